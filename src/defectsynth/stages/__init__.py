"""Stages: one public function per command, the layer between ``commands/`` and the methods.

A stage owns what the command's feature needs beyond one algorithm: validation of option
combinations, the defaults, and the choice of backend. ``commands/<name>.py`` turns its options into
one stage call and prints a summary; ``defectsynth.<name>(...)`` from Python is the same stage, so
the library call is the whole feature (docs/architecture-stages.md).

===============  ===========================================  =========================================
command          stage                                        what the stage owns
===============  ===========================================  =========================================
prepare          :func:`defectsynth.stages.prepare.prepare`    (the importer itself)
encode-boxes     :func:`defectsynth.stages.encode_boxes.encode_boxes`  (the encoder itself)
train            :func:`defectsynth.stages.train.train`        (the trainer itself)
sample           :func:`defectsynth.stages.sample.sample`      backend, its defaults, foreign options
filter           :func:`defectsynth.stages.filter.filter_dataset`  backend (``by``), its defaults
balance          :func:`defectsynth.stages.balance.balance`    ``split="all"``
evaluate         :func:`defectsynth.stages.evaluate.evaluate`  (the grid itself)
metrics          :func:`defectsynth.stages.metrics.compute_metrics`  (the metrics themselves)
export           :func:`defectsynth.stages.export.export`      (the exporter itself)
push             :func:`defectsynth.stages.push.push`          (the upload itself)
demo             :func:`defectsynth.stages.demo.demo`          (the demo itself)
===============  ===========================================  =========================================

"(the ... itself)": the method's own function already validates and defaults everything, and the
stage module re-exports it (the command imports it from the method module: the same function).
``sample``, ``filter`` and ``balance`` import their methods (torch, diffusers) inside the
functions, so ``commands/`` can import them at start-up.
"""
