"""latency-lab core, one package per stage of the pipeline, each importing only those below it.

    cli/        the command line (app.py registers the command groups)
    scaleout/   where work runs: executors, Ray, device actors, sweep plans
    sweeps/     sweep a resolution range, find its jumps, pick candidate resolutions
    tables/     recorded latency tables and per-block lookup tables
    training/   image folders, training, Net2Net
    measure/    the device API, the sampling protocol, statistics, drift, the SQLite store
    models/     specs made runnable: TFLite, Keras, torch and ONNX builders, model files
    network/    what a network is: the spec, the one block walk, counts, scaling, presets
    errors.py, paths.py, fileio.py: the ground floor every package may use

Start at `network/spec.py` (what a network is), `measure/api.py` (what a device is and returns)
and `measure/protocol.py` (how samples are taken); `cli/app.py` maps commands onto these.
"""
