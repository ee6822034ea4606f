"""Training: ``compile``, ``fit``, ``evaluate``, ``predict`` and the ``*_on_batch`` pieces.

``fit`` moves the data to the backend's device once, shuffles there, gathers each batch by
index there, and reads losses and metrics back to the host only when a progress update or
the end of an epoch reports them.
"""

import contextlib
import math
import os
import threading

from xpnet import arguments
from xpnet import callbacks as callbacks_module
from xpnet import distributed
from xpnet import losses as losses_module
from xpnet import metrics as metrics_module
from xpnet import mixed_precision
from xpnet import optimizers
from xpnet.engine import data_feed
from xpnet.engine import nonfinite
from xpnet.engine.data_adapter import DataAdapter
from xpnet.engine.data_adapter import shape_of
from xpnet.engine.data_adapter import take_batch
from xpnet.engine.node import flatten
from xpnet.engine.node import map_structure
from xpnet.engine.node import pack_as
from xpnet.engine.nonfinite import NonFiniteLossError
from xpnet.engine.packing import FlatParams
from xpnet.engine.tape import unwrap
from xpnet.kernels import threads
from xpnet.layers.base import ActivatedLayer
from xpnet.losses import apply_mask
from xpnet.utils import next_seed

__all__ = ["Trainer", "NonFiniteLossError"]

# Multiply-adds per training step under which one BLAS thread is used: at 1e7 (the seed
# model at batch 256) two threads were 10 % faster on an idle machine (PERFORMANCE.md).
_SMALL_STEP_MACS = 1e7
_THREADS_CHOSEN = threading.local()  # .inside: within a _cpu_threads context on this thread


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
            Not weighted by ``sample_weight`` or ``class_weight`` (Keras 3).
        weighted_metrics : same forms as ``metrics``
            Weighted by ``sample_weight`` and ``class_weight``; a name already used by
            ``metrics`` is reported as ``weighted_<name>`` (Keras 3's ``CompileMetrics``).
        """
        ignored = set(kwargs) - {"run_eagerly", "jit_compile", "steps_per_execution",
                                 "weighted_metrics", "auto_scale_loss"}
        if ignored:
            raise TypeError(f"{self.name}: compile got unexpected argument(s) {sorted(ignored)}")
        self.optimizer = mixed_precision.wrap_optimizer(self, optimizers.get(optimizer))
        self._loss_spec, self._loss_weights_spec, self._metrics_spec = loss, loss_weights, metrics
        self._weighted_metrics_spec = kwargs.get("weighted_metrics")
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

    def _build_metrics(self, spec, what):
        """One list of metrics per output from ``metrics=`` (or ``weighted_metrics=``), as
        Keras 3's ``CompileMetrics``: for one output a list of metrics; for several, a
        list with one entry (a metric or a list of them) per output, or a dict by output
        name. Nothing gives no metrics."""
        n = len(self.outputs)
        if not spec:
            return [[] for _ in range(n)]
        if not isinstance(spec, (list, tuple, dict)):
            raise ValueError(f"{self.name}: {what} must be a list or a dict; received "
                             f"{what}={spec!r}")
        if n == 1:
            flat = list(spec.values()) if isinstance(spec, dict) else list(spec)
            per_output = [[m for item in flat
                           for m in (item if isinstance(item, (list, tuple)) else [item])]]
        else:
            if isinstance(spec, (list, tuple)) and len(spec) != n:
                raise ValueError(f"{self.name}: for a model with {n} outputs, {what} as a "
                                 f"list needs one entry (a metric or a list) per output; "
                                 f"received {what}={list(spec)!r} of length {len(spec)}")
            per_output = [ms if isinstance(ms, (list, tuple)) else [ms]
                          for ms in self._per_output(spec, [], what)]
        return [[metrics_module.get(m, loss, t.shape) for m in ms if m is not None]
                for ms, loss, t in zip(per_output, self._losses, self.outputs)]

    def _finish_compile(self):
        """The part of compile that needs the graph: fused heads, metrics, flat weights."""
        self._losses = [None if s is None else losses_module.get(s) for s in
                        self._per_output(self._loss_spec, None, "losses")]
        weights = self._per_output(self._loss_weights_spec, 1.0, "loss weights") \
            if self._loss_weights_spec is not None else [1.0] * len(self.outputs)
        self._loss_weights = [float(w) for w in weights]
        self._metrics = self._build_metrics(self._metrics_spec, "metrics")
        self._weighted_metrics = self._build_metrics(
            getattr(self, "_weighted_metrics_spec", None), "weighted_metrics")
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
        """``loss``, each output's loss, the ``metrics``, then the ``weighted_metrics``
        (output by output); a weighted metric whose name is taken is ``weighted_<name>``."""
        names = ["loss"] + [t.name for t in self._output_loss_trackers]
        multi = len(self.outputs) > 1
        seen = {}

        def add(name, weighted, m, k):
            prefix = f"{self._output_name(k)}_" if multi else ""
            if weighted and prefix + name in seen:
                name = f"weighted_{m.name}"
            name = prefix + name
            if name in seen:
                seen[name] += 1
                name = f"{name}_{seen[name] - 1}"
            else:
                seen[name] = 1
            names.append(name)

        for weighted, groups in ((False, self._metrics), (True, self._weighted_metrics)):
            for k, ms in enumerate(groups):
                for m in ms:
                    add(m.name, weighted, m, k)
        return names

    def _all_metrics(self):
        return [self._loss_tracker] + self._output_loss_trackers + \
            [m for ms in self._metrics for m in ms] + \
            [m for ms in self._weighted_metrics for m in ms]

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

    def get_compile_config(self):
        """The arguments ``compile`` was given (loss, loss weights, metrics, weighted
        metrics), as Keras 3's ``get_compile_config``; None before ``compile``."""
        if not self.compiled:
            return None
        return {"loss": self._loss_spec, "loss_weights": self._loss_weights_spec,
                "metrics": self._metrics_spec,
                "weighted_metrics": getattr(self, "_weighted_metrics_spec", None)}

    def optimizer_layout(self):
        """The optimizer's view of the weights (see ``_optimizer_layout``), compiled state
        completed first: what saving writes the optimizer's slots from."""
        self._sync_compile()
        return self._optimizer_layout()

    def get_fit_rng_state(self):
        """The state of ``fit``'s shuffling generator (None before the first ``fit``)."""
        return None if self._rng is None else self._rng.get_state()

    def set_fit_rng_state(self, state):
        """Continue ``fit``'s shuffling from a :meth:`get_fit_rng_state` snapshot."""
        self._rng = self.backend.rng(None)
        self._rng.set_state(state)

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

    def _loss_and_dys(self, ys, outs, sample_weight, train, masks=None, losses=None):
        total, dys = 0.0, []
        losses = self._train_losses if losses is None else losses
        for k, (loss, y, out) in enumerate(zip(losses, ys, outs)):
            if loss is None:
                dys.append(None)
                continue
            sw = loss.weights(y, out, sample_weight, None if masks is None else masks[k])
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
        """``metrics`` see only the masks; ``weighted_metrics`` the sample (and class)
        weights too, as Keras 3."""
        for group, weights in ((self._metrics, None), (self._weighted_metrics, sample_weight)):
            for k, ms in enumerate(group):
                if not ms:
                    continue
                sw = weights if masks is None or masks[k] is None else \
                    apply_mask(weights, masks[k], "sum", outs[k])
                self._update_output_metrics(k, ms, ys[k], outs[k], sw, fused)

    def _update_output_metrics(self, k, ms, y, out, sw, fused):
        head = self._heads[k]
        if not (fused and head is not None and head.fused):
            for m in ms:
                m.update_state(y, out, sw)
            return
        probs = None
        for m in ms:
            if m.argmax_based and head.layer.activation == "softmax":
                m.update_state(y, out, sw)
                continue
            if probs is None:
                from xpnet import kernels

                probs = kernels.activation(head.layer.activation, out)
            m.update_state(y, probs, sw)

    def _model_input(self, xs):
        return pack_as(self._input_tree, xs) if self._multi_in else xs[0]

    def _flat_outputs(self, outs):
        return flatten(outs) if self._multi_out else [outs]

    def _train_step(self, xs, ys, sample_weight, guard=False):
        """One step; returns the loss (a 0-d array). With ``guard`` (host-resident arrays
        only, where reading a value costs nothing), a non-finite loss returns None before
        any gradient is applied, so the weights stay as they were."""
        self._ensure_packed()
        dist = distributed.active()  # distributed: None in one process
        self._zero_grads()
        with mixed_precision.compute_weights(self, grads=True):  # a policy's dtypes (#11)
            outs, ctx = self.forward(self._model_input(xs), training=True, fused=True)
            outs = self._flat_outputs(outs)
            masks = getattr(ctx, "masks", None)
            heads = _call_heads(ctx, self._losses) if self._graph is None else None
            if heads:  # a subclassed model's softmax/sigmoid heads: the loss on the logits
                logits, losses = list(outs), list(self._train_losses)
                for k, (twin, z) in heads.items():
                    logits[k], losses[k] = z, twin
                loss, dys = self._loss_and_dys(ys, logits, sample_weight, True, masks,
                                               losses)
            else:
                loss, dys = self._loss_and_dys(ys, outs, sample_weight, True, masks)
            if dist is not None:  # distributed: this shard's share of the global batch's loss
                dys = dist.scale(dys)
            self.optimizer.check_step(ctx)  # loss scaling (#11): refuses unscaled penalties
            # distributed: weight-penalty gradients are added on rank 0 only (they are summed)
            extra = self._regularization(add_grads=dist is None or dist.is_chief) + \
                ctx.penalty
            if not isinstance(extra, float):  # 0.0 when nothing is regularized: no array op
                loss = loss + extra
            elif isinstance(loss, float) and all(d is None for d in dys):
                raise ValueError(f"{self.name}: nothing to minimise: compile(loss=...) or add "
                                 "a loss with self.add_loss() in call()")
            if guard and not (math.isfinite(float(loss)) if dist is None
                              else dist.all_finite(loss)):  # distributed: every rank agrees
                return None
            self.backward(ctx, pack_as(self._output_tree, dys) if self._multi_out else dys[0],
                          need_dx=False)
            if dist is not None:  # distributed: sum the gradients over the ranks
                dist.reduce_gradients(self)
        self.optimizer.apply_gradients(self._grads_and_params())
        self._loss_tracker.update_mean(loss, xs[0].shape[0] if dist is None
                                       else dist.local_count)  # distributed
        if dist is None or dist.local_count:  # distributed: a stand-in sample is not counted
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
        dist = distributed.active()  # distributed: a stand-in sample counts 0
        self._loss_tracker.update_mean(loss, xs[0].shape[0] if dist is None
                                       else dist.local_count)
        if dist is None or dist.local_count:  # distributed: a stand-in sample is not counted
            self._update_metrics(ys, outs, sample_weight, True, masks)
        return loss

    # -- fit -----------------------------------------------------------------------------
    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None,
            validation_split=0.0, validation_data=None, shuffle=True, class_weight=None,
            sample_weight=None, initial_epoch=0, steps_per_epoch=None, validation_steps=None,
            validation_batch_size=None, validation_freq=1):
        """Train for ``epochs`` passes over ``(x, y)``; returns a :class:`History`.

        ``x`` and ``y`` are arrays (NumPy or the backend's own; a list or dict of them for
        several inputs or outputs), or ``x`` is a generator, an iterator or a
        :class:`~xpnet.engine.data_feed.PyDataset` of batches ``(x, y)`` / ``(x, y, w)`` (then
        ``y`` is None and ``steps_per_epoch`` bounds an epoch). ``validation_split`` holds
        out the last fraction of the samples before shuffling, as Keras does;
        ``validation_data`` is ``(x, y)``, ``(x, y, w)`` or a generator/PyDataset
        (``validation_steps`` batches of it).
        """
        self._require_compiled("fit")
        arguments.check_sizes(self.name, "fit", batch_size=batch_size, epochs=epochs,
                              steps_per_epoch=steps_per_epoch, initial_epoch=initial_epoch,
                              validation_batch_size=validation_batch_size,
                              validation_freq=validation_freq, validation_steps=validation_steps)
        batch_size = batch_size or 32
        val = None
        if data_feed.is_stream(x):
            _no_arrays_with_stream(self, y, sample_weight, validation_split, "fit")
            train = data_feed.StreamBatches(x, self._stream_adapter("train_step", "fit",
                                                                    class_weight),
                                            steps_per_epoch, "fit").prime()
        else:
            xs, ys, sw, val = self._fit_arrays(x, y, sample_weight, class_weight,
                                               validation_split)
            train = data_feed.ArrayBatches(self.backend.xp, xs, ys, sw, batch_size,
                                           steps_per_epoch, shuffle, shard=_shard(self))
        vbs = validation_batch_size or batch_size
        if validation_data is not None:
            val = self._validation_batches(validation_data, vbs, validation_steps)
        elif val is not None:
            val = data_feed.ArrayBatches(self.backend.xp, *val, vbs, validation_steps,
                                         shard=_shard(self))
        verbose = 1 if verbose == "auto" else verbose
        self.history = callbacks_module.History()
        cbs = list(callbacks or [])
        if verbose:
            cbs.append(callbacks_module.ProgbarLogger(verbose))
        cbs.append(self.history)
        if distributed.active() is not None:  # distributed: rank 0 alone prints and writes
            cbs = distributed.active().callbacks(cbs)
        cb = callbacks_module.CallbackList(cbs, self, {"epochs": epochs, "steps": train.steps,
                                                      "verbose": verbose,
                                                      "validation": val is not None})
        self.stop_training = False
        try:
            with self._cpu_threads(batch_size), cb.ending_on_error():
                return self._run_epochs(train, val, epochs, initial_epoch, cb, cbs,
                                        validation_freq)
        finally:
            train.close()
            if val is not None:
                val.close()

    def _fit_arrays(self, x, y, sample_weight, class_weight, validation_split):
        """Arrays on the device for ``fit``: ``(xs, ys, sw, held-out validation or None)``."""
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
        if not validation_split:
            return xs, ys, sw, None
        if not 0.0 < validation_split < 1.0:
            raise ValueError(f"{self.name}: validation_split must be in (0, 1), "
                             f"got {validation_split}")
        cut = int(n * (1.0 - validation_split))
        if cut == 0 or cut == n:
            raise ValueError(f"{self.name}: validation_split={validation_split} leaves "
                             f"no training or no validation samples out of {n}")
        val = ([a[cut:, ...] for a in xs], [a[cut:, ...] for a in ys],
               None if sw is None else sw[cut:])
        return ([a[:cut, ...] for a in xs], [a[:cut, ...] for a in ys],
                None if sw is None else sw[:cut], val)

    def _validation_batches(self, data, batch_size, steps):
        if data_feed.is_stream(data):
            return data_feed.StreamBatches(data, self._stream_adapter("test_step", "fit"),
                                           steps, "fit (validation_data)")
        if not isinstance(data, (tuple, list)) or len(data) not in (2, 3):
            raise ValueError(f"{self.name}: validation_data must be (x, y), (x, y, "
                             f"sample_weight) or a generator/PyDataset; got {type(data)}")
        vx, vy, *vw = data
        if self._custom("train_step"):
            vxs = self._adapt_raw(vx, "fit")[0]
            vys = self._adapt_raw(vy, "targets")[0] if vy is not None else []
        else:
            vxs = self._adapt_x(vx, "fit")
            vys = self._adapt_y(vy, vxs[0].shape[0], "fit")
        vsw = self._adapt_weights(vw[0] if vw else None, vxs[0].shape[0])
        return data_feed.ArrayBatches(self.backend.xp, vxs, vys, vsw, batch_size, steps,
                                      shard=_shard(self))

    def _stream_adapter(self, step_name, what, class_weight=None):
        """``raw batch -> (xs, ys, sw)`` on the device, checked as arrays given to ``fit``
        are (or passed through in the user's structure for a user's ``step_name``)."""
        custom = self._custom(step_name)

        def adapt(batch):
            x, y, w = data_feed.unpack(batch)
            if custom:
                xs, self._x_tree = self._adapt_raw(x, what)
                ys, self._y_tree = self._adapt_raw(y, "targets") if y is not None else \
                    ([], None)
            else:
                xs = self._adapt_x(x, what)
                ys = [] if y is None and step_name == "predict_step" else \
                    self._adapt_y(y, xs[0].shape[0], what)
            sw = self._adapt_weights(w, xs[0].shape[0])
            if class_weight is not None:
                sw = self._class_weights(class_weight, ys[0], sw)
            return xs, ys, sw

        return adapt

    def _run_epochs(self, train, val, epochs, initial_epoch, cb, cbs, validation_freq):
        if self._rng is None:
            self._rng = self.backend.rng(next_seed())
        if not self._custom("train_step"):
            self._ensure_packed()  # gen: the training function is built: capture weights
        dist = distributed.active()
        if dist is not None:  # distributed: rank 0's weights and seeds; the backward hook
            dist.prepare(self)
        xp = self.backend.xp
        custom = self._custom("train_step")
        lazy = self._lazy_logs()
        guard = self.backend.name == "cpu" and not custom  # NumPy: the loss is on the host
        self._initial_epoch = initial_epoch  # a callback (BackupAndRestore) may move it
        cb.on_train_begin({})
        for epoch in range(self._initial_epoch, epochs):
            self.reset_metrics()
            cb.on_epoch_begin(epoch, {})
            record, bad, step = [], None, -1
            for step, (bx, by, bw) in enumerate(train.epoch(self._rng)):
                cb.on_train_batch_begin(step, {})
                if custom:
                    self._step_logs = self.train_step(self._step_data(bx, by, bw))
                else:
                    loss = self._train_step(bx, by, bw, guard)
                    if loss is None:
                        bad = step
                        break
                    if not guard:  # the losses read back every CHECK_EVERY steps
                        record.append(xp.reshape(xp.asarray(loss), ()))
                        if len(record) == nonfinite.CHECK_EVERY:
                            bad = _first_bad(xp, record, step)
                            if bad is not None:
                                break
                cb.on_train_batch_end(step, lazy)
                if dist is not None:  # distributed: stop together
                    self.stop_training = bool(dist.agree(self.stop_training))
                if self.stop_training:
                    break
            if bad is None and record:
                bad = _first_bad(xp, record, step)
            if dist is not None and not custom:  # distributed: the first bad step
                bad = dist.agree(math.inf if bad is None else bad, "min", "the non-finite check")
                bad = None if bad == math.inf else int(bad)
            if bad is not None:
                return nonfinite.stop(self, cb, cbs, epoch, bad, step - bad, guard,
                                      train.batch(bad))
            logs = self._read_logs()
            if val is not None and _validate_now(epoch, validation_freq):
                val_logs = self._evaluate_batches(val, cb)
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
        inside, _THREADS_CHOSEN.inside = getattr(_THREADS_CHOSEN, "inside", False), True
        try:
            with self.backend.limit_threads(1), threads.using(n):
                yield
        finally:
            _THREADS_CHOSEN.inside = inside

    def _call_threads(self, x):
        """:meth:`_cpu_threads` for an eager ``model(x)``, unless fit, evaluate or predict
        (or an outer model's call) has chosen the threads already. A generation loop that
        calls ``model(x)`` a step at a time took 6x predict's time a call with BLAS's
        default threads on the shared 2-core machine (30 ms against 4.6 ms, GPT of
        examples/transformer_gpt.py, batch 1)."""
        if getattr(_THREADS_CHOSEN, "inside", False):
            return contextlib.nullcontext()
        if self.backend is None:  # a subclassed model's first call: the backend it builds on
            from xpnet.backend import get_backend

            self.backend = get_backend(getattr(self, "_backend_spec", None))
        leaves = [a for a in flatten(x) if getattr(a, "ndim", 0)]
        return self._cpu_threads(leaves[0].shape[0] if leaves else 1)

    def _read_logs(self):
        """Every tracked value as a Python float (a per-class result as a NumPy array, as
        Keras logs it): the one host sync of an epoch."""
        if self._custom("train_step") or self._custom("test_step"):
            logs = getattr(self, "_step_logs", None) or {}
            return {k: self._host_value(v) for k, v in flatten_logs(logs).items()}
        dist = distributed.active()
        if dist is not None:  # distributed: summed over the ranks
            return dist.read_logs(self.metrics_names, self._all_metrics())
        return {name: self._host_value(m.result()) for name, m in
                zip(self.metrics_names, self._all_metrics())}

    def _host_value(self, v):
        v = unwrap(v)
        if getattr(v, "ndim", 0) and self.backend is not None:
            return self.backend.to_numpy(v)
        return _to_float(v)

    def _lazy_logs(self, test=False):
        if self._custom("test_step" if test else "train_step"):
            return _StepLogs(self)
        return callbacks_module.LazyLogs({name: m.result for name, m in
                                          zip(self.metrics_names, self._all_metrics())},
                                         self._host_value)

    # -- evaluate / predict ----------------------------------------------------------------
    def _evaluate_batches(self, source, cb):
        """Loss and metrics over ``source``'s batches, with the test hooks of ``cb``."""
        self.reset_metrics()
        custom = self._custom("test_step")
        lazy = self._lazy_logs(test=True)
        cb.on_test_begin({})
        for step, (bx, by, bw) in enumerate(source.epoch()):
            cb.on_test_batch_begin(step, {})
            if custom:
                self._step_logs = self.test_step(self._step_data(bx, by, bw))
            else:
                self._test_step(bx, by, bw)
            cb.on_test_batch_end(step, lazy)
        logs = self._read_logs()
        cb.on_test_end(logs)
        return logs

    def _callback_list(self, callbacks, verbose, steps):
        verbose = 1 if verbose == "auto" else verbose
        cbs = list(callbacks or [])
        if verbose:
            cbs.append(callbacks_module.ProgbarLogger(verbose))
        if distributed.active() is not None:  # distributed: rank 0 alone prints and writes
            cbs = distributed.active().callbacks(cbs)
        return callbacks_module.CallbackList(cbs, self, {"epochs": 1, "steps": steps,
                                                        "verbose": verbose})

    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", sample_weight=None,
                 steps=None, callbacks=None, return_dict=False, **kwargs):
        """Loss and metrics on ``(x, y)`` (or a generator/PyDataset of batches, ``steps``
        of them): a float, a list of floats (Keras's order: ``loss``, each output's loss,
        then the metrics), or a dict. ``callbacks`` get the ``on_test_*`` hooks."""
        self._require_compiled("evaluate")
        arguments.check_sizes(self.name, "evaluate", batch_size=batch_size)
        batch_size = batch_size or 32
        if data_feed.is_stream(x):
            _no_arrays_with_stream(self, y, sample_weight, 0.0, "evaluate")
            source = data_feed.StreamBatches(x, self._stream_adapter("test_step", "evaluate"),
                                             steps, "evaluate").prime()
        else:
            if self._custom("test_step"):  # gen: a custom test_step takes x alone, as fit
                xs, self._x_tree = self._adapt_raw(x, "evaluate")
                ys, self._y_tree = self._adapt_raw(y, "targets") if y is not None else \
                    ([], None)
            else:
                xs = self._adapt_x(x, "evaluate")
                ys = self._adapt_y(y, xs[0].shape[0], "evaluate")
            sw = self._adapt_weights(sample_weight, xs[0].shape[0])
            source = data_feed.ArrayBatches(self.backend.xp, xs, ys, sw, batch_size, steps,
                                            shard=_shard(self))
        if distributed.active() is not None:  # distributed: rank 0's weights everywhere
            distributed.active().prepare(self)
        cb = self._callback_list(callbacks, verbose, source.steps)
        try:
            with self._cpu_threads(batch_size):
                logs = self._evaluate_batches(source, cb)
        finally:
            source.close()
        return self._format_result(logs, return_dict)

    def _format_result(self, logs, return_dict):
        if return_dict:
            return logs
        values = list(logs.values())
        return values[0] if len(values) == 1 else values

    def predict(self, x, batch_size=None, verbose="auto", steps=None, callbacks=None,
                **kwargs):
        """Outputs for ``x`` (arrays, or a generator/PyDataset whose batches are ``x`` or
        ``(x, ...)``) as NumPy arrays (a list or dict for several outputs); ``callbacks``
        get the ``on_predict_*`` hooks, ``on_predict_batch_end`` with ``{"outputs": ...}``."""
        arguments.check_sizes(self.name, "predict", batch_size=batch_size)
        custom = self._custom("predict_step")
        batch_size = batch_size or 32
        if data_feed.is_stream(x):
            source = data_feed.StreamBatches(x, self._stream_adapter("predict_step",
                                                                     "predict"),
                                             steps, "predict").prime()
        else:
            if custom:
                xs, self._x_tree = self._adapt_raw(x, "predict")
            else:
                xs = self._adapt_x(x, "predict")
            source = data_feed.ArrayBatches(self.backend.xp, xs, [], None, batch_size, steps)
        cb = self._callback_list(callbacks, verbose, source.steps)
        chunks = []
        try:
            with self._cpu_threads(batch_size), mixed_precision.compute_weights(self):
                cb.on_predict_begin({})
                for step, (batch, _, _) in enumerate(source.epoch()):
                    cb.on_predict_batch_begin(step, {})
                    if custom:
                        out = self.predict_step(self._step_data(batch, [], None))
                    else:
                        out = self._infer(self._model_input(batch))
                    chunks.append(out)
                    cb.on_predict_batch_end(step, {"outputs": out})
                cb.on_predict_end({})
        finally:
            source.close()
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
                                                 else x[0])[0] or 1, verbose=0)

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
        for group, sw in ((self._metrics, None), (self._weighted_metrics, sample_weight)):
            for ms, yt, yp in zip(group, ys, preds):
                for m in ms:
                    m.update_state(unwrap(yt), unwrap(yp), None if sw is None else unwrap(sw))
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


def _validate_now(epoch, freq):
    """Keras's ``validation_freq``: every ``freq`` epochs, or the (1-based) epochs listed."""
    if isinstance(freq, (list, tuple, set)):
        return epoch + 1 in freq
    return (epoch + 1) % freq == 0


def _first_bad(xp, record, step):
    """The step of the first non-finite loss among ``record`` (the losses of the steps up
    to ``step``), or None; empties ``record``."""
    bad = nonfinite.first_bad(xp, xp.stack(record))
    first = step + 1 - len(record)
    record.clear()
    return None if bad is None else first + bad


def _no_arrays_with_stream(model, y, sample_weight, validation_split, what):
    """A generator/PyDataset carries its own targets and weights (as Keras)."""
    for name, value in (("y", y), ("sample_weight", sample_weight)):
        if value is not None:
            raise ValueError(f"{model.name}: {what} got {name}= with x a generator or "
                             f"PyDataset; its batches carry (x, y, sample_weight)")
    if validation_split:
        raise ValueError(f"{model.name}: validation_split needs array data; with a "
                         "generator or PyDataset pass validation_data")


def _call_heads(ctx, losses):
    """The outputs of a subclassed model that a softmax or sigmoid layer made last, whose
    loss has a logits twin: ``{output: (twin loss, logits)}``. Their tape records are
    switched to take ``dL/dz`` (the fused softmax-cross-entropy gradient) as the cotangent,
    as the static graph's fused heads do."""
    from xpnet.engine.calls import TapeContext

    if not isinstance(ctx, TapeContext):
        return None
    heads = {}
    records = ctx.tape._records
    for k, (t, loss) in enumerate(zip(ctx.outs, losses)):
        head = getattr(t, "head", None)
        if head is None or loss is None or t.mask is not None:
            continue
        layer, lctx, rec = head
        twin = loss.logits_twin(layer.activation)
        if twin is None or any(t.id in r.ins for r in records if r is not rec):
            continue  # the probabilities feed something else: no shortcut
        tape = ctx.tape
        rec.vjp = lambda dys, layer=layer, lctx=lctx, i=rec.ins[0], tape=tape: [
            layer.backward_z(lctx[0], dys[0], i is not None and i not in tape._skip)]
        heads[k] = (twin, lctx[2])
    return heads


def _shard(model):
    """Data parallelism: how a rank takes its part of each global batch (None alone)."""
    dist = distributed.active()
    if dist is None:
        return None
    return lambda *args: dist.take(model, *args)


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
        return self._model._host_value(self._current()[key])

    def get(self, key, default=None):
        cur = self._current()
        return self._model._host_value(cur[key]) if key in cur else default

    def __contains__(self, key):
        return key in self._current()

    def __iter__(self):
        return iter(self._current())

    def __len__(self):
        return len(self._current())

    def keys(self):
        return self._current().keys()

    def items(self):
        return [(k, self._model._host_value(v)) for k, v in self._current().items()]

    def values(self):
        return [self._model._host_value(v) for v in self._current().values()]
