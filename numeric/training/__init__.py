"""Training runs: configuration, data, checkpoints, evaluation, the loop, resume.

The modules, each with one job:

* :mod:`~numeric.training.config`: :class:`~numeric.training.config.TrainConfig`, the
  paper's defaults, ``config.json`` read back and compared (``config_key``);
* :mod:`~numeric.training.methods`: the optimization method a config names;
* :mod:`~numeric.training.data`: the data of a run and where they live (NumPy or JAX
  devices);
* :mod:`~numeric.training.checkpoints`: saving, finding and reading checkpoints;
* :mod:`~numeric.training.evaluation`: test-split evaluation and ``summary.json``;
* :mod:`~numeric.training.iteration`: one iteration (batch, step, running means);
* :mod:`~numeric.training.loop`: the iterations of a run and what happens between them;
* :mod:`~numeric.training.runs`: ``train``, ``resume`` and ``ensure_run``, the entry
  points;
* :mod:`~numeric.training.rundir`: the run directory as storage (lock, atomic files);
* :mod:`~numeric.training.progress`: the progress bar and one-line notes.

A run directory (see :mod:`numeric.training.rundir` for how it is written) holds

``config.json``
    ``config``: the :class:`~numeric.training.config.TrainConfig` with every default filled in; ``data``: the
    name, split, size and files of the training and test data the run loaded.
``metrics.csv``
    One row per iteration (columns :data:`numeric.metrics.COLUMNS`), appended in chunks
    of ``flush_every`` rows and at every checkpoint, interruption and failure.  The
    test columns are filled every ``eval_every`` iterations and after the last one.
``summary.json``
    Status (``"running"``, ``"completed"``, ``"interrupted"``, ``"diverged"``,
    ``"failed"``) and the key numbers of the run (:func:`~numeric.training.evaluation.summarize`); rewritten at
    every checkpoint.
``checkpoints/ckpt-XXXXXX.npz``
    Weights, optimizer state, sampler position, step counter, the metric tails the
    moving averages need and a copy of every metric row so far, after ``XXXXXX``
    iterations; the newest ``keep`` are kept.
``.lock``
    Held by the one process that writes the run; a second one is refused.

``config.json``, ``summary.json`` and the checkpoints are replaced atomically.  Nothing
is written before a run is accepted: the configuration, the output directory and the
data are checked first, so a refused or failed start leaves no half-made run behind.

Reproducibility: the weights are drawn from ``np.random.default_rng(seed)`` and the
batches from a :class:`~numeric.data.BatchSampler` seeded with ``seed`` (a new
permutation every epoch, so the label-sorted embedded MNIST is shuffled); nothing else
is random.  A run interrupted at any point and resumed from its last checkpoint with
:func:`~numeric.training.runs.resume` therefore reproduces the uninterrupted run bit for bit (all columns but
the timings).  The rows after the checkpoint are recomputed on resume; the rows before
it are checked against the checkpoint's copy and repaired from it when one is missing,
repeated or torn (:func:`numeric.metrics.reconcile`), never deleted.

Interruption: the first Ctrl-C or SIGTERM stops after the current iteration; a second one
(or any ``KeyboardInterrupt``) stops at once (:mod:`numeric.stopping`).  Either way every
completed iteration's metrics are written, a checkpoint of the last completed iteration
is saved and the summary says ``"interrupted"``.  An exception inside the loop does the
same with ``"failed"`` and is re-raised as :class:`~numeric.training.loop.TrainingFailed`.  A run whose loss or
gradient stops being finite (:class:`numeric.cr.Diverged`) ends with ``"diverged"``: its
metrics hold every finite iteration, and it is a result (not resumed by
:func:`~numeric.training.runs.ensure_run`), not an error.
"""
