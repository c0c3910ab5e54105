"""Decoupled training in parallel: one module per worker process on torch.distributed.

The network is cut into K *stages* (consecutive layers), one per worker. Every
cut is a decoupled interface, so no worker ever waits for a backward pass:

    worker k, minibatch t:
      1. receive the activation h_{k-1}(t) from worker k-1 (worker 0 reads x);
      2. run its module, ask its synthesizer for dL/dh_k and update at once
         (update unlocking); the gradient that lands on its input is the
         *bootstrapped target* for worker k-1's synthesizer;
      3. send h_k(t) up and that target down (non-blocking sends);
      4. receive the target for step t - delay from worker k+1 and regress its
         synthesizer on it. With ``target_delay >= 1`` that target was sent while
         this worker was busy with step t, so in steady state nobody waits.

The last worker owns the loss and learns from the true gradient. Transport is
torch.distributed's gloo backend with point-to-point ``isend``/``recv``, so the
same worker code runs as local processes (``train_parallel``) or across
machines with ``torchrun`` (``torchrun --nproc-per-node K -m dni_lite.parallel --config cfg.json``).

The code is split by concern: ``config`` (the run), ``stage`` (one worker's
layers and synthesizer), ``reference`` (the same steps in one process, and the
backprop baseline), ``worker`` (one process's loop), ``launch`` (start and
watch K processes), ``devices`` and ``bench`` (``python -m dni_lite.parallel.bench``);
``balance``, ``pipeline_backprop``, ``ceiling`` and ``methods`` make the five-method
benchmark (``python -m dni_lite.bench``).

``train_in_process`` runs exactly the same per-worker steps in the same order,
one after the other in a single process: the reference the parallel run must
reproduce, and the single-process cost of DNI. ``train_backprop`` is the
baseline: the same model and data, one process, ordinary backprop.

Every worker knows the labels (each one builds the same seeded batches): the
last one needs them for the loss, the others as cDNI context. Labels are tiny;
activations and gradients are what travels.
"""
from .config import ParallelConfig
from .launch import WorkerError, train_parallel
from .reference import train_backprop, train_in_process

__all__ = ["ParallelConfig", "WorkerError", "train_parallel", "train_backprop", "train_in_process"]
