"""Training: ``compile``, ``fit``, ``evaluate``, ``predict`` and the ``*_on_batch`` pieces.

``fit`` moves the data to the backend's device once, shuffles there, gathers each batch by
index there, and reads losses and metrics back to the host only when a progress update or
the end of an epoch reports them.
"""

import contextlib
import math
import os

from xpnet import callbacks as callbacks_module
from xpnet import distributed
from xpnet import losses as losses_module
from xpnet import metrics as metrics_module
from xpnet import nonfinite
from xpnet import optimizers
from xpnet.data_adapter import DataAdapter
from xpnet.data_adapter import shape_of
from xpnet.data_adapter import take_batch
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
        if loss is None:
            raise ValueError(f"{self.name}: compile needs a loss, e.g. loss='mse'")
        self.optimizer = optimizers.get(optimizer)
        self._loss_spec, self._loss_weights_spec, self._metrics_spec = loss, loss_weights, metrics
        self.compiled = True
        self._compiled_graph = None
        self._rng = None
        if self._graph is not None:
            self._finish_compile()

    def _per_output(self, spec, default, what):
        names = [t.node.layer.name if t.node else str(i) for i, t in enumerate(self.outputs)]
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
        self._losses = [losses_module.get(s) for s in
                        self._per_output(self._loss_spec, None, "losses")]
        weights = self._per_output(self._loss_weights_spec, 1.0, "loss weights") \
            if self._loss_weights_spec is not None else [1.0] * len(self.outputs)
        self._loss_weights = [float(w) for w in weights]
        spec = self._metrics_spec or []
        if len(self.outputs) > 1 and isinstance(spec, (list, tuple)) and spec and \
                not isinstance(spec[0], (list, tuple)):
            spec = [spec] * len(self.outputs)
        per_output = self._per_output(spec, [], "metrics") if len(self.outputs) > 1 \
            else [spec]
        self._metrics = [[metrics_module.get(m, loss, t.shape) for m in (ms or [])]
                         for ms, loss, t in zip(per_output, self._losses, self.outputs)]
        self._train_losses = list(self._losses)
        consumers = {i for step in self._graph for i in step.ins}
        for step in self._graph:
            step.fused = False
        for k, slot in enumerate(self._output_slots):
            step = next(s for s in self._graph if s.out == slot)
            twin = self._losses[k].logits_twin(getattr(step.layer, "activation", None)) \
                if isinstance(step.layer, ActivatedLayer) else None
            if twin is not None and slot not in consumers and \
                    self._output_slots.count(slot) == 1 and \
                    step.layer.activity_regularizer is None:
                step.fused = True
                self._train_losses[k] = twin
        self._heads = [next(s for s in self._graph if s.out == slot)
                       for slot in self._output_slots]
        self._loss_tracker = metrics_module.Mean(name="loss")
        self._output_loss_trackers = [metrics_module.Mean(name=f"{self._output_name(k)}_loss")
                                      for k in range(len(self.outputs))] \
            if len(self.outputs) > 1 else []
        self._pack()
        self._macs = None  # the step's cost, for the BLAS thread count; measured on first use
        self._compiled_graph = self._graph

    def _output_name(self, k):
        t = self.outputs[k]
        return t.node.layer.name if t.node else f"output_{k}"

    def _pack(self):
        pairs = self.trainable_pairs()
        self._frozen = [la for la in self._leaf_layers()
                        if la.grads and all(pl is not la for pl, _ in pairs)]
        self._regularized = [la for la in self._leaf_layers() if la.regularizers]
        self._flat = FlatParams(pairs, self.backend) \
            if pairs and self.backend.supports_views else None
        self.optimizer.name_variables([(la.params[k], k) for la, k in pairs])

    def _leaf_layers(self):
        out = []
        for la in self._unique_layers():
            out.extend(la._leaf_layers() if hasattr(la, "_leaf_layers") else [la])
        return out

    def _require_compiled(self, what):
        if not self.compiled:
            raise RuntimeError(f"{self.name}: call compile() before {what}()")

    def _sync_compile(self):
        """Finish compiling once the graph exists (a Sequential built from its first data)."""
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
        for m in self._all_metrics():
            m.reset_state()

    # -- one step ------------------------------------------------------------------------
    def _grads_and_params(self):
        if self._flat is not None and self._flat.valid():
            if self.optimizer.per_variable:
                # clipnorm clips each variable by its own norm (and decay exclusions pick
                # variables): hand the optimizer the views of the flat buffers, not the buffers
                return [(g, p) for _, _, p, g in self._flat.views]
            return self._flat.groups
        return [(la.grads[k], la.params[k]) for la, k in self.trainable_pairs()]

    def _optimizer_layout(self):
        """How the optimizer sees the weights: ``(array it updates, [(layer, weight name,
        offset, size, shape)])`` for each array, so its slots can be saved per variable and
        restored into any packing."""
        if self._flat is not None and self._flat.valid():
            if not self.optimizer.per_variable:
                return self._flat.layout
            return [(p, [(la, k, 0, math.prod(p.shape), tuple(p.shape))])
                    for la, k, p, _ in self._flat.views]
        return [(la.params[k], [(la, k, 0, math.prod(la.params[k].shape),
                                 tuple(la.params[k].shape))])
                for la, k in self.trainable_pairs()]

    def _zero_grads(self):
        if self._flat is not None and self._flat.valid():
            for flat_g, _ in self._flat.groups:
                flat_g[...] = 0.0
            for la in self._frozen:
                la.zero_grads()
        else:
            self.zero_grads()

    def _loss_and_dys(self, ys, outs, sample_weight, train):
        total, dys = 0.0, []
        losses = self._train_losses
        for k, (loss, y, out) in enumerate(zip(losses, ys, outs)):
            value, dy = loss.value_and_grad(y, out, sample_weight)
            w = self._loss_weights[k]
            if w != 1.0:
                value, dy = value * w, dy * w
            if self._output_loss_trackers:
                self._output_loss_trackers[k].update_mean(value, ys[0].shape[0])
            total = total + value
            dys.append(dy)
        return total, dys

    def _update_metrics(self, ys, outs, sample_weight, fused):
        for k, ms in enumerate(self._metrics):
            if not ms:
                continue
            out = outs[k]
            head = self._heads[k]
            if fused and head.fused:
                probs = None
                for m in ms:
                    if m.argmax_based and head.layer.activation == "softmax":
                        m.update_state(ys[k], out, sample_weight)
                        continue
                    if probs is None:
                        from xpnet import kernels

                        probs = kernels.activation(head.layer.activation, out)
                    m.update_state(ys[k], probs, sample_weight)
            else:
                for m in ms:
                    m.update_state(ys[k], out, sample_weight)

    def _train_step(self, xs, ys, sample_weight, guard=False):
        """One step; returns the loss (a 0-d array). With ``guard`` (host-resident arrays
        only, where reading a value costs nothing), a non-finite loss returns None before
        any gradient is applied, so the weights stay as they were."""
        dist = distributed.active()  # distributed: None in one process
        self._zero_grads()
        outs, ctx = self.forward(xs if self._multi_in else xs[0], training=True, fused=True)
        outs = outs if self._multi_out else [outs]
        loss, dys = self._loss_and_dys(ys, outs, sample_weight, True)
        if dist is not None:  # distributed: this shard's share of the global batch's loss
            dys = dist.scale(dys)
        # distributed: weight-penalty gradients are added on rank 0 only (they are summed)
        extra = self._regularization(add_grads=dist is None or dist.is_chief) + ctx[2]
        if not isinstance(extra, float):  # 0.0 when nothing is regularized: no array op
            loss = loss + extra
        if guard and not (math.isfinite(float(loss)) if dist is None
                          else dist.all_finite(loss)):  # distributed: every rank agrees
            return None
        self.backward(ctx, dys if self._multi_out else dys[0], need_dx=False)
        if dist is not None:  # distributed: sum the gradients over the ranks
            dist.reduce_gradients(self)
        self.optimizer.apply_gradients(self._grads_and_params())
        self._loss_tracker.update_mean(loss, xs[0].shape[0] if dist is None
                                       else dist.local_count)  # distributed
        self._update_metrics(ys, outs, sample_weight, True)
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
                    la.grads[name] += reg.grad(w)
        return total

    def _test_step(self, xs, ys, sample_weight):
        outs, ctx = self.forward(xs if self._multi_in else xs[0], training=False, fused=True)
        outs = outs if self._multi_out else [outs]
        loss, _ = self._loss_and_dys(ys, outs, sample_weight, False)
        extra = self._regularization(add_grads=False) + ctx[2]
        if not isinstance(extra, float):
            loss = loss + extra
        dist = distributed.active()  # distributed: a stand-in sample counts 0
        self._loss_tracker.update_mean(loss, xs[0].shape[0] if dist is None
                                       else dist.local_count)
        self._update_metrics(ys, outs, sample_weight, True)
        return loss

    # -- fit -----------------------------------------------------------------------------
    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None,
            validation_split=0.0, validation_data=None, shuffle=True, class_weight=None,
            sample_weight=None, initial_epoch=0, steps_per_epoch=None,
            validation_batch_size=None, validation_freq=1):
        """Train for ``epochs`` passes over ``(x, y)``; returns a :class:`History`.

        ``x`` and ``y`` are arrays (NumPy or the backend's own; a list or dict of them for
        several inputs or outputs). ``validation_split`` holds out the last fraction of the
        samples before shuffling, as Keras does.
        """
        self._require_compiled("fit")
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
            vxs = self._adapt_x(vx, "fit")
            val = (vxs, self._adapt_y(vy, vxs[0].shape[0], "fit"),
                   self._adapt_weights(vw[0] if vw else None, vxs[0].shape[0]))
        else:
            val = None
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
        dist = distributed.active()
        if dist is not None:  # distributed: rank 0 alone prints and writes
            cbs = dist.callbacks(cbs)
        cb = callbacks_module.CallbackList(cbs, self, {"epochs": epochs, "steps": steps,
                                                      "verbose": verbose})
        if self._rng is None:
            self._rng = self.backend.rng(next_seed())
        if dist is not None:  # distributed: rank 0's weights and seeds; the backward hook
            dist.prepare(self)
        self.stop_training = False
        with self._cpu_threads(batch_size):
            return self._run_epochs(xs, ys, sw, val, n, batch_size, steps, epochs,
                                    initial_epoch, shuffle, cb, cbs, validation_batch_size,
                                    validation_freq)

    def _run_epochs(self, xs, ys, sw, val, n, batch_size, steps, epochs, initial_epoch,
                    shuffle, cb, cbs, validation_batch_size, validation_freq):
        xp = self.backend.xp
        lazy = callbacks_module.LazyLogs({name: m.result for name, m in
                                          zip(self.metrics_names, self._all_metrics())})
        guard = self.backend.name == "cpu"  # NumPy: the loss is on the host already
        cb.on_train_begin()
        for epoch in range(initial_epoch, epochs):
            self.reset_metrics()
            cb.on_epoch_begin(epoch)
            perm = self._rng.permutation(n) if shuffle else None
            record = None if guard else xp.zeros((steps,), dtype=getattr(xp, self.dtype),
                                                 device=self.backend.device)
            bad = None
            dist = distributed.active()
            for step in range(steps):
                if dist is None:
                    bx, by, bw = take_batch(xp, xs, ys, sw, perm, step * batch_size,
                                            batch_size)
                else:  # distributed: this rank's shard of the global batch
                    bx, by, bw = dist.take(self, xp, xs, ys, sw, perm, step * batch_size,
                                           batch_size, n, take_batch)
                cb.on_train_batch_begin(step)
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
                if dist is not None:  # distributed: stop together
                    self.stop_training = bool(dist.agree(self.stop_training))
                if self.stop_training:
                    break
            if bad is None and record is not None:
                bad = nonfinite.first_bad(xp, record[:step + 1])
            if dist is not None and record is not None:  # distributed: the first bad step
                bad = dist.agree(math.inf if bad is None else bad, "min", "the non-finite check")
                bad = None if bad == math.inf else int(bad)
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
        dist = distributed.active()
        if dist is not None:  # distributed: summed over the ranks
            return dist.read_logs(self.metrics_names, self._all_metrics())
        return {name: float(m.result()) for name, m in
                zip(self.metrics_names, self._all_metrics())}

    # -- evaluate / predict ----------------------------------------------------------------
    def _evaluate_arrays(self, xs, ys, sw, batch_size):
        self.reset_metrics()
        n = xs[0].shape[0]
        dist = distributed.active()
        for start in range(0, n, batch_size):
            if dist is not None:  # distributed: this rank's shard of the batch
                self._test_step(*dist.take(self, self.backend.xp, xs, ys, sw, None, start,
                                           batch_size, n, take_batch))
                continue
            index = slice(start, start + batch_size)
            self._test_step([a[index, ...] for a in xs], [a[index, ...] for a in ys],
                            None if sw is None else sw[index])
        return self._read_logs()

    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", sample_weight=None,
                 return_dict=False, **kwargs):
        """Loss and metrics on ``(x, y)``: a float, a list of floats, or a dict."""
        self._require_compiled("evaluate")
        xs = self._adapt_x(x, "evaluate")
        ys = self._adapt_y(y, xs[0].shape[0], "evaluate")
        sw = self._adapt_weights(sample_weight, xs[0].shape[0])
        batch_size = batch_size or 32
        if distributed.active() is not None:  # distributed: rank 0's weights everywhere
            distributed.active().prepare(self)
        with self._cpu_threads(batch_size):
            logs = self._evaluate_arrays(xs, ys, sw, batch_size)
        return self._format_result(logs, return_dict)

    def _format_result(self, logs, return_dict):
        if return_dict:
            return logs
        values = list(logs.values())
        return values[0] if len(values) == 1 else values

    def predict(self, x, batch_size=None, verbose="auto", **kwargs):
        """Outputs for ``x`` as NumPy arrays (a list for several outputs)."""
        xs = self._adapt_x(x, "predict")
        batch_size = batch_size or 32
        n = xs[0].shape[0]
        chunks = []
        with self._cpu_threads(batch_size):
            for start in range(0, n, batch_size):
                batch = [a[start:start + batch_size, ...] for a in xs]
                out, _ = self.forward(batch if self._multi_in else batch[0], training=False)
                chunks.append(out if self._multi_out else [out])
        xp = self.backend.xp
        outs = [self.backend.to_numpy(xp.concat([c[k] for c in chunks], axis=0))
                for k in range(len(self.outputs))]
        return outs if self._multi_out else outs[0]

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
        if distributed.active() is not None:  # distributed: this rank's shard of the batch
            xs, ys, sw = distributed.active().on_batch(self, xs, ys, sw, take_batch)
        self.reset_metrics()
        with self._cpu_threads(xs[0].shape[0]):
            self._train_step(xs, ys, sw)
        return self._format_result(self._read_logs(), return_dict)

    def test_on_batch(self, x, y=None, sample_weight=None, return_dict=False):
        """Loss (and metrics) on one batch, without training."""
        self._require_compiled("test_on_batch")
        xs = self._adapt_x(x, "test_on_batch")
        ys = self._adapt_y(y, xs[0].shape[0], "test_on_batch")
        sw = self._adapt_weights(sample_weight, xs[0].shape[0])
        if distributed.active() is not None:  # distributed: this rank's shard of the batch
            xs, ys, sw = distributed.active().on_batch(self, xs, ys, sw, take_batch)
        self.reset_metrics()
        self._test_step(xs, ys, sw)
        return self._format_result(self._read_logs(), return_dict)

    def predict_on_batch(self, x):
        """Outputs for one batch, as NumPy."""
        return self.predict(x, batch_size=shape_of(x if not isinstance(x, (list, tuple))
                                                 else x[0])[0] or 1)
