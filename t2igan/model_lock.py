"""One rule for building and loading networks in this process: one at a time, whatever thread asks.

`from_pretrained` in diffusers and transformers patches process-wide state while it runs: accelerate's
`init_empty_weights` swaps `torch.nn.Module.register_parameter` (new parameters land on the meta device),
`no_init_weights` swaps the `torch.nn.init` functions for no-ops, transformers swaps `torch.linspace` and the default
dtype. Each restores what it saw on entry. Two loads at once (the app's request threads, a training job's thread)
therefore restore each other's patches in the wrong order and leave `register_parameter` patched for good: every
later load in the process then fails with "Unsupported device type 'meta'". A network built in another thread during
a load gets meta tensors or skips its initialisation.

So every load (`T2IGANPipeline.from_pretrained`, the text encoder, each network class's `from_pretrained`) and every
construction of one of our networks holds MODEL_LOCK. It is re-entrant: a pipeline load takes it again for each
component. The patches are context managers that restore on exceptions, so a failed load leaves the process able to
load again once the lock is released.
"""
from __future__ import annotations

import functools
import threading

MODEL_LOCK = threading.RLock()


class SerialBuild:
    """Mixin for torch module classes: `__init__` and `from_pretrained` run under MODEL_LOCK.

    Put it first in the bases (`class Generator(SerialBuild, ModelMixin, ConfigMixin)`); every subclass that
    defines its own `__init__` is wrapped too.
    """

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is not None and not getattr(init, "_holds_model_lock", False):
            @functools.wraps(init)  # keeps the signature that diffusers' register_to_config reads
            def locked_init(self, *args, **kw):
                with MODEL_LOCK:
                    init(self, *args, **kw)

            locked_init._holds_model_lock = True
            cls.__init__ = locked_init

    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        with MODEL_LOCK:
            return super().from_pretrained(*args, **kwargs)
