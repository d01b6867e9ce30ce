"""Device drivers, one file each; found by name through `latency_lab.measure.api.get_device`.

`DRIVERS` is the one list of the drivers this distribution ships (name -> "module:Class").
Listing them here rather than as entry points keeps the list in the code that owns the drivers
and needs no reinstall when a driver is added; other packages add theirs through the
`latency_lab.devices` entry-point group, which `measure.device_class` reads as well.
"""

DRIVERS = {
    "cpu": "latency_lab.devices.cpu:CpuDevice",
    "android": "latency_lab.devices.android:AndroidDevice",
    "pixel2": "latency_lab.devices.android:Pixel2Device",
    "cuda": "latency_lab.devices.cuda:CudaDevice",
    "jetson": "latency_lab.devices.tensorrt:JetsonDevice",
    "table": "latency_lab.devices.table:TableDevice",
    "lut": "latency_lab.devices.table:LutDevice",
}
