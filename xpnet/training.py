"""Training: ``compile``, ``fit``, ``evaluate``, ``predict`` and the ``*_on_batch`` pieces.

``fit`` moves the data to the backend's device once, shuffles there, gathers each batch by
index there, and reads losses and metrics back to the host only when a progress update or
the end of an epoch reports them.
"""

import contextlib
import math
import os

from xpnet import arguments
from xpnet import callbacks as callbacks_module
from xpnet import losses as losses_module
from xpnet import metrics as metrics_module
from xpnet import mixed_precision
from xpnet import nonfinite
from xpnet import optimizers
from xpnet.data_adapter import DataAdapter
from xpnet.data_adapter import shape_of
from xpnet.data_adapter import take_batch
from xpnet.engine.node import flatten
from xpnet.engine.node import map_structure
from xpnet.engine.node import pack_as
from xpnet.engine.tape import unwrap
from xpnet.kernels import threads
from xpnet.layers.base import ActivatedLayer
from xpnet.nonfinite import NonFiniteLossError
from xpnet.packing import FlatParams
from xpnet.utils import next_seed

__all__ = ["Trainer", "NonFiniteLossError"]

# Multiply-adds per training step under which one BLAS thread is used: at 1e7 (the seed
# model at batch 256) two threads were 10 % faster on an idle machine (PERFORMANCE.md).
_SMALL_STEP_MACS = 1e7


class Trainer(DataAdapter):
    """The training half of :class:`xpnet.Model`."""

    def __init__(self):
        self.optimizer = None
        self.compiled = False
        self.stop_training = False
        self.history = None
        self._flat = None
        self._rng = None

    # -- compile -------------------------------------------------------------------------
    def compile(self, optimizer="rmsprop", loss=None, loss_weights=None, metrics=None,
                **kwargs):
        """Configure training, as Keras.

        Parameters
        ----------
        optimizer : str or Optimizer, default="rmsprop"
        loss : str, Loss, or a list/dict of them (one per output)
        loss_weights : list or dict of floats, default=None
        metrics : list of str or Metric (or a list/dict of lists, one per output)
        """
        ignored = set(kwargs) - {"run_eagerly", "jit_compile", "steps_per_execution",
                                 "weighted_metrics", "auto_scale_loss"}
        if ignored:
            raise TypeError(f"{self.name}: compile got unexpected argument(s) {sorted(ignored)}")
        self.optimizer = mixed_precision.wrap_optimizer(self, optimizers.get(optimizer))
        self._loss_spec, self._loss_weights_spec, self._metrics_spec = loss, loss_weights, metrics
        self.compiled = True
        self._compiled_graph = None
        self._rng = None
        if self._graph is not None or getattr(self, "_specs_known", False):
            self._finish_compile()

    def _output_names(self):
        keys = list(self._output_tree) if isinstance(getattr(self, "_output_tree", None),
                                                     dict) else None
        if keys is not None:
            return keys
        return [t.node.layer.name if t.node is not None else t.name for t in self.outputs]

    def _per_output(self, spec, default, what):
        names = self._output_names()
        if isinstance(spec, dict):
            unknown = set(spec) - set(names)
            if unknown:
                raise ValueError(f"{self.name}: {what} for unknown output(s) {sorted(unknown)};"
                                 f" outputs are {names}")
            return [spec.get(n, default) for n in names]
        if isinstance(spec, (list, tuple)) and len(self.outputs) > 1:
            if len(spec) != len(self.outputs):
                raise ValueError(f"{self.name}: {len(spec)} {what} for "
                                 f"{len(self.outputs)} outputs")
            return list(spec)
        return [spec] * len(self.outputs)

    def _finish_compile(self):
        """The part of compile that needs the graph: fused heads, metrics, flat weights."""
        self._losses = [None if s is None else losses_module.get(s) for s in
                        self._per_output(self._loss_spec, None, "losses")]
        weights = self._per_output(self._loss_weights_spec, 1.0, "loss weights") \
            if self._loss_weights_spec is not None else [1.0] * len(self.outputs)
        self._loss_weights = [float(w) for w in weights]
        spec = self._metrics_spec or []
        if len(self.outputs) > 1 and isinstance(spec, (list, tuple)) and (
                not spec or not isinstance(spec[0], (list, tuple))):
            spec = [spec] * len(self.outputs)
        per_output = self._per_output(spec, [], "metrics") if len(self.outputs) > 1 \
            else [spec]
        self._metrics = [[metrics_module.get(m, loss, t.shape) for m in (ms or [])]
                         for ms, loss, t in zip(per_output, self._losses, self.outputs)]
        self._train_losses = list(self._losses)
        self._heads = [None] * len(self.outputs)
        if self._graph is not None:
            self._fuse_heads()
        self._loss_tracker = metrics_module.Mean(name="loss")
        self._output_loss_trackers = [metrics_module.Mean(name=f"{self._output_name(k)}_loss")
                                      for k in range(len(self.outputs))] \
            if len(self.outputs) > 1 else []
        self._regularized = [la for la in self._all_layers() if la.regularizers]
        self._packed = False  # the trainable weights are captured at the first train step
        self.optimizer.check_model(self)
        self._macs = None  # the step's cost, for the BLAS thread count; measured on first use
        self._compiled_graph = self._graph if self._graph is not None else True

    def _fuse_heads(self):
        """Train a softmax (sigmoid) head with cross-entropy on its logits, in one kernel."""
        consumers = {i for step in self._graph for i in step.ins}
        producer = {step.outs[0]: step for step in self._graph if step.simple}
        for step in self._graph:
            step.fused = False
        for k, slot in enumerate(self._output_slots):
            step = producer.get(slot)
            if step is None or self._losses[k] is None:
                continue
            self._heads[k] = step
            twin = self._losses[k].logits_twin(getattr(step.layer, "activation", None)) \
                if isinstance(step.layer, ActivatedLayer) else None
            if twin is not None and slot not in consumers and \
                    self._output_slots.count(slot) == 1 and \
                    step.layer.activity_regularizer is None:
                step.fused = True
                self._train_losses[k] = twin

    def _output_name(self, k):
        return self._output_names()[k]

    def _pack(self):
        """Capture the trainable weights (packed into flat buffers) for training.

        As Keras 3 on TensorFlow, the set of weights a model trains is fixed when its
        training function is first built: at its first ``fit``/``train_on_batch``/
        ``train_step`` after ``compile``, not at ``compile``. Setting ``trainable`` later
        changes nothing for that model until it is compiled again; a GAN's discriminator
        that trained once before ``discriminator.trainable = False`` keeps training through
        its own ``train_on_batch`` while a combined model compiled after the flag was set
        moves only the generator.
        """
        pairs = self.trainable_pairs()
        layers = self._all_layers()
        self._train_pairs = pairs
        self._frozen = [la for la in layers
                        if la.grads and all(pl is not la for pl, _ in pairs)]
        self._flat = FlatParams(pairs, self.backend) \
            if pairs and self.backend.supports_views else None
        self.optimizer.name_variables([(la.params[k], k) for la, k in pairs])
        self._packed = True

    def _ensure_packed(self):
        if not getattr(self, "_packed", True):
            self._pack()

    def _require_compiled(self, what):
        if not self.compiled:
            raise RuntimeError(f"{self.name}: call compile() before {what}()")

    def _sync_compile(self):
        """Finish compiling once the graph exists (a Sequential built from its first data)."""
        if self._graph is None:
            if getattr(self, "_specs_known", False) and self._compiled_graph is None:
                self._finish_compile()
            return
        if self._compiled_graph is not self._graph:
            self._finish_compile()

    @property
    def metrics_names(self):
        names = ["loss"] + [t.name for t in self._output_loss_trackers]
        multi = len(self.outputs) > 1
        for k, ms in enumerate(self._metrics):
            names += [f"{self._output_name(k)}_{m.name}" if multi else m.name for m in ms]
        return names

    def _all_metrics(self):
        return [self._loss_tracker] + self._output_loss_trackers + \
            [m for ms in self._metrics for m in ms]

    def reset_metrics(self):
        for m in self.metrics:
            m.reset_state()

    # -- one step ------------------------------------------------------------------------
    def _grads_and_params(self):
        if self._flat is not None and self._flat.valid():
            if self.optimizer.per_variable:
                # clipnorm clips each variable by its own norm (and decay exclusions pick
                # variables): hand the optimizer the views of the flat buffers, not the buffers
                return [(g, p) for _, _, p, g in self._flat.views]
            return self._flat.groups
        return [(la.grads[k], la.params[k]) for la, k in self._train_pairs]

    def _optimizer_layout(self):
        """How the optimizer sees the weights: ``(array it updates, [(layer, weight name,
        offset, size, shape)])`` for each array, so its slots can be saved per variable and
        restored into any packing."""
        self._ensure_packed()
        if self._flat is not None and self._flat.valid():
            if not self.optimizer.per_variable:
                return self._flat.layout
            return [(p, [(la, k, 0, math.prod(p.shape), tuple(p.shape))])
                    for la, k, p, _ in self._flat.views]
        return [(la.params[k], [(la, k, 0, math.prod(la.params[k].shape),
                                 tuple(la.params[k].shape))])
                for la, k in self._train_pairs]

    def _zero_grads(self):
        if self._flat is not None and self._flat.valid():
            for flat_g, _ in self._flat.groups:
                flat_g[...] = 0.0
            for la in self._frozen:
                la.zero_grads()
        else:
            self.zero_grads()

    def _loss_and_dys(self, ys, outs, sample_weight, train, masks=None):
        total, dys = 0.0, []
        losses = self._train_losses
        for k, (loss, y, out) in enumerate(zip(losses, ys, outs)):
            if loss is None:
                dys.append(None)
                continue
            sw = sample_weight if masks is None or masks[k] is None else \
                _apply_mask(sample_weight, masks[k], loss.reduction, out)
            value, dy = mixed_precision.loss_value_and_grad(loss, y, out, sw)
            w = self._loss_weights[k]
            if self._output_loss_trackers:  # Keras reports each output's loss unweighted
                self._output_loss_trackers[k].update_mean(value, ys[0].shape[0])
            if w != 1.0:
                value, dy = value * w, dy * w
            total = total + value
            dys.append(self.optimizer.scale_loss(dy) if train else dy)  # loss scaling (#11)
        return total, dys

    def _update_metrics(self, ys, outs, sample_weight, fused, masks=None):
        for k, ms in enumerate(self._metrics):
            if not ms:
                continue
            out = outs[k]
            head = self._heads[k]
            sw = sample_weight if masks is None or masks[k] is None else \
                _apply_mask(sample_weight, masks[k], "sum", out)
            if fused and head is not None and head.fused:
                probs = None
                for m in ms:
                    if m.argmax_based and head.layer.activation == "softmax":
                        m.update_state(ys[k], out, sw)
                        continue
                    if probs is None:
                        from xpnet import kernels

                        probs = kernels.activation(head.layer.activation, out)
                    m.update_state(ys[k], probs, sw)
            else:
                for m in ms:
                    m.update_state(ys[k], out, sw)

    def _model_input(self, xs):
        return pack_as(self._input_tree, xs) if self._multi_in else xs[0]

    def _flat_outputs(self, outs):
        return flatten(outs) if self._multi_out else [outs]

    def _train_step(self, xs, ys, sample_weight, guard=False):
        """One step; returns the loss (a 0-d array). With ``guard`` (host-resident arrays
        only, where reading a value costs nothing), a non-finite loss returns None before
        any gradient is applied, so the weights stay as they were."""
        self._ensure_packed()
        self._zero_grads()
        with mixed_precision.compute_weights(self, grads=True):  # a policy's dtypes (#11)
            outs, ctx = self.forward(self._model_input(xs), training=True, fused=True)
            outs = self._flat_outputs(outs)
            masks = getattr(ctx, "masks", None)
            loss, dys = self._loss_and_dys(ys, outs, sample_weight, True, masks)
            self.optimizer.check_step(ctx)  # loss scaling (#11): refuses unscaled penalties
            extra = self._regularization(add_grads=True) + ctx.penalty
            if not isinstance(extra, float):  # 0.0 when nothing is regularized: no array op
                loss = loss + extra
            elif isinstance(loss, float) and all(d is None for d in dys):
                raise ValueError(f"{self.name}: nothing to minimise: compile(loss=...) or add "
                                 "a loss with self.add_loss() in call()")
            if guard and not math.isfinite(float(loss)):
                return None
            self.backward(ctx, pack_as(self._output_tree, dys) if self._multi_out else dys[0],
                          need_dx=False)
        self.optimizer.apply_gradients(self._grads_and_params())
        self._loss_tracker.update_mean(loss, xs[0].shape[0])
        self._update_metrics(ys, outs, sample_weight, True, masks)
        return loss

    def _regularization(self, add_grads):
        """The layers' weight penalties, and (when training) their gradients added in."""
        total = 0.0
        for la in self._regularized:
            if not la.trainable:
                continue
            for name, reg in la.regularizers.items():
                w = la.params[name]
                total = total + reg(w)
                if add_grads and name in la.grads:
                    la.grads[name] += self.optimizer.scale_loss(reg.grad(w))
        return total

    def _test_step(self, xs, ys, sample_weight):
        with mixed_precision.compute_weights(self):  # a policy's dtypes (#11)
            outs, ctx = self.forward(self._model_input(xs), training=False, fused=True)
            outs = self._flat_outputs(outs)
            masks = getattr(ctx, "masks", None)
            loss, _ = self._loss_and_dys(ys, outs, sample_weight, False, masks)
            extra = self._regularization(add_grads=False) + ctx.penalty
        if not isinstance(extra, float):
            loss = loss + extra
        self._loss_tracker.update_mean(loss, xs[0].shape[0])
        self._update_metrics(ys, outs, sample_weight, True, masks)
        return loss

    # -- fit -----------------------------------------------------------------------------
    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None,
            validation_split=0.0, validation_data=None, shuffle=True, class_weight=None,
            sample_weight=None, initial_epoch=0, steps_per_epoch=None,
            validation_batch_size=None, validation_freq=1, validation_steps=None):
        """Train for ``epochs`` passes over ``(x, y)``; returns a :class:`History`.

        ``x`` and ``y`` are arrays (NumPy or the backend's own; a list or dict of them for
        several inputs or outputs). ``validation_split`` holds out the last fraction of the
        samples before shuffling, as Keras does.
        """
        self._require_compiled("fit")
        arguments.check_sizes(self.name, "fit", batch_size=batch_size, epochs=epochs,
                              steps_per_epoch=steps_per_epoch, initial_epoch=initial_epoch,
                              validation_batch_size=validation_batch_size,
                              validation_freq=validation_freq, validation_steps=validation_steps)
        custom = self._custom("train_step")
        if custom:
            xs, self._x_tree = self._adapt_raw(x, "fit")
            n = xs[0].shape[0]
            ys, self._y_tree = self._adapt_raw(y, "targets") if y is not None else ([], None)
        else:
            xs = self._adapt_x(x, "fit")
            n = xs[0].shape[0]
            ys = self._adapt_y(y, n, "fit")
        sw = self._adapt_weights(sample_weight, n)
        if class_weight is not None:
            sw = self._class_weights(class_weight, ys[0], sw)
        if validation_data is None and validation_split:
            if not 0.0 < validation_split < 1.0:
                raise ValueError(f"{self.name}: validation_split must be in (0, 1), "
                                 f"got {validation_split}")
            cut = int(n * (1.0 - validation_split))
            if cut == 0 or cut == n:
                raise ValueError(f"{self.name}: validation_split={validation_split} leaves "
                                 f"no training or no validation samples out of {n}")
            val = ([a[cut:, ...] for a in xs], [a[cut:, ...] for a in ys],
                   None if sw is None else sw[cut:])
            xs, ys = [a[:cut, ...] for a in xs], [a[:cut, ...] for a in ys]
            sw = None if sw is None else sw[:cut]
            n = cut
        elif validation_data is not None:
            vx, vy, *vw = validation_data
            if custom:
                vxs = self._adapt_raw(vx, "fit")[0]
                vys = self._adapt_raw(vy, "targets")[0] if vy is not None else []
            else:
                vxs = self._adapt_x(vx, "fit")
                vys = self._adapt_y(vy, vxs[0].shape[0], "fit")
            val = (vxs, vys, self._adapt_weights(vw[0] if vw else None, vxs[0].shape[0]))
        else:
            val = None
        if val is not None and validation_steps:  # the first validation_steps batches
            keep = slice(0, min(val[0][0].shape[0],
                                validation_steps * (validation_batch_size or batch_size or 32)))
            val = ([a[keep, ...] for a in val[0]], [a[keep, ...] for a in val[1]],
                   None if val[2] is None else val[2][keep])
        batch_size = batch_size or 32
        steps = math.ceil(n / batch_size)
        if steps_per_epoch:
            steps = min(steps, steps_per_epoch)
        verbose = 1 if verbose == "auto" else verbose
        self.history = callbacks_module.History()
        cbs = list(callbacks or [])
        if verbose:
            cbs.append(callbacks_module.ProgbarLogger(verbose))
        cbs.append(self.history)
        cb = callbacks_module.CallbackList(cbs, self, {"epochs": epochs, "steps": steps,
                                                      "verbose": verbose,
                                                      "validation": val is not None})
        if self._rng is None:
            self._rng = self.backend.rng(next_seed())
        self.stop_training = False
        with self._cpu_threads(batch_size), cb.ending_on_error():
            return self._run_epochs(xs, ys, sw, val, n, batch_size, steps, epochs,
                                    initial_epoch, shuffle, cb, cbs, validation_batch_size,
                                    validation_freq)

    def _run_epochs(self, xs, ys, sw, val, n, batch_size, steps, epochs, initial_epoch,
                    shuffle, cb, cbs, validation_batch_size, validation_freq):
        xp = self.backend.xp
        custom = self._custom("train_step")
        lazy = self._lazy_logs()
        guard = self.backend.name == "cpu" and not custom  # NumPy: the loss is on the host
        cb.on_train_begin()
        for epoch in range(initial_epoch, epochs):
            self.reset_metrics()
            cb.on_epoch_begin(epoch)
            perm = self._rng.permutation(n) if shuffle else None
            record = None if guard or custom else xp.zeros((steps,), dtype=getattr(xp, self.dtype),
                                                 device=self.backend.device)
            bad = None
            for step in range(steps):
                bx, by, bw = take_batch(xp, xs, ys, sw, perm, step * batch_size, batch_size)
                cb.on_train_batch_begin(step)
                if custom:
                    self._step_logs = self.train_step(self._step_data(bx, by, bw))
                    cb.on_train_batch_end(step, lazy)
                    if self.stop_training:
                        break
                    continue
                loss = self._train_step(bx, by, bw, guard)
                if loss is None:
                    bad = step
                    break
                if record is not None:
                    record[step] = loss
                    if (step + 1) % nonfinite.CHECK_EVERY == 0:
                        bad = nonfinite.first_bad(xp, record[:step + 1])
                        if bad is not None:
                            break
                cb.on_train_batch_end(step, lazy)
                if self.stop_training:
                    break
            if bad is None and record is not None and not custom:
                bad = nonfinite.first_bad(xp, record[:step + 1])
            if bad is not None:
                data = take_batch(xp, xs, ys, sw, perm, bad * batch_size, batch_size)
                return nonfinite.stop(self, cb, cbs, epoch, bad, step - bad, guard, data)
            logs = self._read_logs()
            if val is not None and (epoch + 1) % validation_freq == 0:
                val_logs = self._evaluate_arrays(*val, validation_batch_size or batch_size)
                logs.update({f"val_{k}": v for k, v in val_logs.items()})
            cb.on_epoch_end(epoch, logs)
            if self.stop_training:
                break
        cb.on_train_end(self._read_logs())
        return self.history

    @contextlib.contextmanager
    def _cpu_threads(self, batch_size):
        """The threads for steps of ``batch_size`` samples, as a context: on the CPU, BLAS on
        one thread and xpnet's own threads (:mod:`xpnet.kernels.threads`) splitting each
        layer's batch, all of :func:`~xpnet.kernels.threads.available` for large steps and
        one for small ones (``$XPNET_CPU_THREADS`` sets the count).

        Small products gain nothing from a second thread and lose 2-8x when another process
        holds the other core (PERFORMANCE.md; the seed model at batch 32 took 3.0 s for two
        epochs with two BLAS threads against 0.38 s with one while the machine was shared).
        Large steps split the batch over xpnet's threads rather than each product over
        OpenBLAS's, whose idle threads spin (benchmarks/RESULTS.md, "Convolutions").
        """
        if self.backend.name != "cpu":
            yield
            return
        n = threads.available()
        if not os.environ.get("XPNET_CPU_THREADS"):
            macs = getattr(self, "_macs", None)
            if macs is None:
                macs = self._macs = self.macs()
            n = 1 if batch_size * macs < _SMALL_STEP_MACS else n
        with self.backend.limit_threads(1), threads.using(n):
            yield

    def _read_logs(self):
        """Every tracked value as a Python float: the one host sync of an epoch."""
        if self._custom("train_step") or self._custom("test_step"):
            logs = getattr(self, "_step_logs", None) or {}
            return {k: _to_float(v) for k, v in flatten_logs(logs).items()}
        return {name: float(m.result()) for name, m in
                zip(self.metrics_names, self._all_metrics())}

    def _lazy_logs(self):
        if self._custom("train_step"):
            return _StepLogs(self)
        return callbacks_module.LazyLogs({name: m.result for name, m in
                                          zip(self.metrics_names, self._all_metrics())})

    # -- evaluate / predict ----------------------------------------------------------------
    def _evaluate_arrays(self, xs, ys, sw, batch_size):
        self.reset_metrics()
        n = xs[0].shape[0]
        custom = self._custom("test_step")
        for start in range(0, n, batch_size):
            index = slice(start, min(start + batch_size, n))
            bx, by = [a[index, ...] for a in xs], [a[index, ...] for a in ys]
            bw = None if sw is None else sw[index]
            if custom:
                self._step_logs = self.test_step(self._step_data(bx, by, bw))
            else:
                self._test_step(bx, by, bw)
        return self._read_logs()

    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", sample_weight=None,
                 return_dict=False, **kwargs):
        """Loss and metrics on ``(x, y)``: a float, a list of floats, or a dict."""
        self._require_compiled("evaluate")
        arguments.check_sizes(self.name, "evaluate", batch_size=batch_size)
        if self._custom("test_step"):  # gen: a custom test_step takes x alone, as in fit
            xs, self._x_tree = self._adapt_raw(x, "evaluate")
            ys, self._y_tree = self._adapt_raw(y, "targets") if y is not None else ([], None)
        else:
            xs = self._adapt_x(x, "evaluate")
            ys = self._adapt_y(y, xs[0].shape[0], "evaluate")
        sw = self._adapt_weights(sample_weight, xs[0].shape[0])
        batch_size = batch_size or 32
        with self._cpu_threads(batch_size):
            logs = self._evaluate_arrays(xs, ys, sw, batch_size)
        return self._format_result(logs, return_dict)

    def _format_result(self, logs, return_dict):
        if return_dict:
            return logs
        values = list(logs.values())
        return values[0] if len(values) == 1 else values

    def predict(self, x, batch_size=None, verbose="auto", **kwargs):
        """Outputs for ``x`` as NumPy arrays (a list or dict for several outputs)."""
        arguments.check_sizes(self.name, "predict", batch_size=batch_size)
        custom = self._custom("predict_step")
        if custom:
            xs, self._x_tree = self._adapt_raw(x, "predict")
        else:
            xs = self._adapt_x(x, "predict")
        batch_size = batch_size or 32
        n = xs[0].shape[0]
        chunks = []
        with self._cpu_threads(batch_size), mixed_precision.compute_weights(self):
            for start in range(0, n, batch_size):
                batch = [a[start:min(start + batch_size, n), ...] for a in xs]
                if custom:
                    out = self.predict_step(self._step_data(batch, [], None))
                else:
                    out = self._infer(self._model_input(batch))
                chunks.append(out)
        xp = self.backend.xp
        tree = chunks[0]
        flat = [flatten(c) for c in chunks]
        outs = [self.backend.to_numpy(xp.concat([unwrap(c[k]) for c in flat], axis=0))
                for k in range(len(flat[0]))]
        return pack_as(tree, outs) if isinstance(tree, (list, tuple, dict)) else outs[0]

    def _infer(self, x):
        """The model's outputs in inference: the static graph, or ``call`` run eagerly."""
        if self._graph is None:
            return map_structure(unwrap, self(x, training=False))
        return self.forward(x, training=False)[0]

    def train_on_batch(self, x, y=None, sample_weight=None, class_weight=None,
                       return_dict=False):
        """One gradient step on one batch; returns its loss (and metrics), as floats."""
        self._require_compiled("train_on_batch")
        xs = self._adapt_x(x, "train_on_batch")
        ys = self._adapt_y(y, xs[0].shape[0], "train_on_batch")
        sw = self._adapt_weights(sample_weight, xs[0].shape[0])
        if class_weight is not None:
            sw = self._class_weights(class_weight, ys[0], sw)
        if self._rng is None:
            self._rng = self.backend.rng(next_seed())
        self.reset_metrics()
        with self._cpu_threads(xs[0].shape[0]):
            self._train_step(xs, ys, sw)
        return self._format_result(self._read_logs(), return_dict)

    def test_on_batch(self, x, y=None, sample_weight=None, return_dict=False):
        """Loss (and metrics) on one batch, without training."""
        self._require_compiled("test_on_batch")
        xs = self._adapt_x(x, "test_on_batch")
        ys = self._adapt_y(y, xs[0].shape[0], "test_on_batch")
        self.reset_metrics()
        self._test_step(xs, ys, self._adapt_weights(sample_weight, xs[0].shape[0]))
        return self._format_result(self._read_logs(), return_dict)

    def predict_on_batch(self, x):
        """Outputs for one batch, as NumPy."""
        return self.predict(x, batch_size=shape_of(x if not isinstance(x, (list, tuple))
                                                 else x[0])[0] or 1)

    # -- the overridable steps (Keras 3's shape) ----------------------------------------
    def _custom(self, name):
        """Whether a subclass overrides the step ``name`` (``train_step``, ...)."""
        return getattr(type(self), name) is not getattr(Trainer, name)

    def _adapt_raw(self, data, what):
        """Data for a user's step: arrays on the backend, in the structure given (no check
        against the model's inputs: a GAN's model may have no ``call``)."""
        if data is None:
            raise ValueError(f"{self.name}: {what} needs input data x")
        if self.backend is None:
            from xpnet.backend import get_backend

            self.backend = get_backend(getattr(self, "_backend_spec", None))
        backend = self.backend
        tree = map_structure(lambda a: a, data)
        if what != "targets" and getattr(self, "_graph", None) is None and \
                not getattr(self, "_specs_known", False):
            from xpnet.engine import calls

            if calls.is_call_based(self):  # a model with a call: build it, learn its outputs
                self._build_call_based(tree)
        flat = [backend.asarray(unwrap(a)) for a in flatten(tree)]
        xp = backend.xp
        flat = [xp.astype(a, getattr(xp, self.dtype)) if xp.isdtype(a.dtype, "real floating")
                and a.dtype != getattr(xp, self.dtype) else a for a in flat]
        return flat, tree

    def _step_data(self, bx, by, bw):
        """A batch as Keras hands it to ``train_step``: ``x`` alone, ``(x, y)`` or
        ``(x, y, sample_weight)``, each in the structure the user gave."""
        x_tree = getattr(self, "_x_tree", None)
        x = pack_as(x_tree, bx) if x_tree is not None and self._custom_data() else \
            self._model_input(bx)
        if not by and bw is None:
            return x
        y_tree = getattr(self, "_y_tree", None)
        if y_tree is not None and self._custom_data():
            y = pack_as(y_tree, by)
        else:
            y = pack_as(self._output_tree, by) if self._multi_out else by[0]
        return (x, y) if bw is None else (x, y, bw)

    def _custom_data(self):
        return self._custom("train_step") or self._custom("test_step") or \
            self._custom("predict_step")

    def train_step(self, data):
        """One training step on ``data`` (``x``, ``(x, y)`` or ``(x, y, sample_weight)``):
        override it (with :class:`xpnet.GradientTape` and ``optimizer.apply_gradients``)
        for a GAN or a VAE; ``fit`` then drives it with its callbacks and progress bar.
        Returns the logs, a dict of metric results."""
        x, y, sw = unpack_x_y_sample_weight(data)
        xs = self._adapt_x(x, "train_step")
        self._train_step(xs, self._adapt_y(y, xs[0].shape[0], "train_step"),
                         self._adapt_weights(sw, xs[0].shape[0]))
        return self.get_metrics_result()

    def test_step(self, data):
        """One evaluation step; returns the logs."""
        x, y, sw = unpack_x_y_sample_weight(data)
        xs = self._adapt_x(x, "test_step")
        self._test_step(xs, self._adapt_y(y, xs[0].shape[0], "test_step"),
                        self._adapt_weights(sw, xs[0].shape[0]))
        return self.get_metrics_result()

    def predict_step(self, data):
        """The model's outputs for one batch."""
        x, _, _ = unpack_x_y_sample_weight(data)
        return self._infer(x)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """The compiled losses of ``y_pred`` against ``y`` (weighted by ``loss_weights``)
        plus every loss the layers added and their weight penalties, as Keras 3; traced
        under a tape, so ``tape.gradient`` differentiates it."""
        from xpnet import ops

        self._sync_compile()
        total = None
        losses = getattr(self, "_losses", None) or []
        if losses and y is not None and y_pred is not None:
            ys = flatten(y) if len(losses) > 1 else [y]
            preds = flatten(y_pred) if len(losses) > 1 else [y_pred]
            for k, (loss, yt, yp) in enumerate(zip(losses, ys, preds)):
                if loss is None:
                    continue
                value = loss(yt, yp, sample_weight=sample_weight)
                w = self._loss_weights[k]
                value = value if w == 1.0 else ops.multiply(value, w)
                total = value if total is None else ops.add(total, value)
        for extra in self.losses:
            total = extra if total is None else ops.add(total, extra)
        if total is None:
            raise ValueError(f"{self.name}: compute_loss has nothing to compute: compile "
                             "with a loss, or add one with self.add_loss()")
        return total

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        """Update the compiled metrics with one batch; returns the logs."""
        self._sync_compile()
        ys = flatten(y) if len(self._metrics) > 1 else [y]
        preds = flatten(y_pred) if len(self._metrics) > 1 else [y_pred]
        for ms, yt, yp in zip(self._metrics, ys, preds):
            for m in ms:
                m.update_state(unwrap(yt), unwrap(yp), sample_weight)
        return self.get_metrics_result()

    def get_metrics_result(self):
        """``{name: result}`` of every metric (the loss first)."""
        if self._custom_metrics():
            return {m.name: m.result() for m in self.metrics}
        return {name: m.result() for name, m in zip(self.metrics_names, self._all_metrics())}

    def _custom_metrics(self):
        return type(self).metrics is not Trainer.metrics

    @property
    def metrics(self):
        """The metrics ``fit`` resets each epoch: the loss tracker, then the compiled ones
        (a subclass overriding ``train_step`` may list its own trackers here)."""
        if getattr(self, "_loss_tracker", None) is None:
            return []
        return self._all_metrics()


def unpack_x_y_sample_weight(data):
    """``(x, y, sample_weight)`` from a batch as ``train_step`` receives it."""
    if isinstance(data, tuple):
        if len(data) == 1:
            return data[0], None, None
        if len(data) == 2:
            return data[0], data[1], None
        if len(data) == 3:
            return data
        raise ValueError(f"a batch is x, (x, y) or (x, y, sample_weight); got a tuple of "
                         f"{len(data)}")
    return data, None, None


def _apply_mask(sample_weight, mask, reduction, like):
    """A Keras mask folded into the sample weights, as Keras 3's ``apply_mask``: with a
    mean reduction the valid entries weigh ``total / valid``, so the mean is over them."""
    from xpnet.backend import namespace

    xp = namespace(like)
    m = xp.astype(mask, like.dtype)
    if reduction in ("mean", "sum_over_batch_size"):
        total = float(math.prod(m.shape))
        m = m * (total / (xp.sum(m) + 1e-7))
    if sample_weight is not None:
        w = xp.astype(sample_weight, like.dtype)
        while w.ndim < m.ndim:
            w = xp.expand_dims(w, axis=-1)
        m = m * w
    return m


def _to_float(v):
    v = unwrap(v)
    try:
        return float(v)
    except (TypeError, ValueError):
        return v


def flatten_logs(logs):
    """Logs with dict results (a metric returning several values) spread out, as Keras."""
    out = {}
    for k, v in logs.items():
        if isinstance(v, dict):
            out.update(flatten_logs(v))
        else:
            out[k] = v
    return out


class _StepLogs(dict):
    """The logs of a user's ``train_step``, read as floats only when a callback asks."""

    def __init__(self, model):
        super().__init__()
        self._model = model

    def _current(self):
        return flatten_logs(getattr(self._model, "_step_logs", None) or {})

    def __getitem__(self, key):
        return _to_float(self._current()[key])

    def get(self, key, default=None):
        cur = self._current()
        return _to_float(cur[key]) if key in cur else default

    def __contains__(self, key):
        return key in self._current()

    def __iter__(self):
        return iter(self._current())

    def __len__(self):
        return len(self._current())

    def keys(self):
        return self._current().keys()

    def items(self):
        return [(k, _to_float(v)) for k, v in self._current().items()]

    def values(self):
        return [_to_float(v) for v in self._current().values()]
