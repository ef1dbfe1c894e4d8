"""The bottom layer, shared by every package: CONFIG and ``--set`` overrides, the shared defaults,
the project's errors and the scripts' entry (``cli``), atomic I/O, mask and box geometry, metrics,
resumable runs, safe checkpoint reading, devices and ``torchrun`` sharding. It imports no other
package of the project."""
