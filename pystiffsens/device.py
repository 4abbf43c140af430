"""Where JAX computations run: ``device="cpu"`` or ``device="cuda"``."""

from __future__ import annotations

import jax

from ._validation import choose

DEVICES = ("cpu", "cuda")

CUDA_HELP = (
    "device='cuda' needs a CUDA GPU and JAX's CUDA wheels: install them with "
    "`pip install 'pystiffsens[cuda]'` (or `pip install -U 'jax[cuda12]'`) on a machine with an "
    "NVIDIA driver, then check `python -c \"import jax; print(jax.devices('cuda'))\"`. "
    "device='cpu' needs nothing."
)


def resolve(device: str) -> jax.Device:
    """The JAX device for ``device``; a clear ``RuntimeError`` when CUDA is asked for and absent."""
    found = _found.get(device)
    if found is not None:
        return found
    name = choose("device", device, DEVICES)
    try:
        found = _found[device] = jax.devices(name)[0]
    except RuntimeError as error:
        if name == "cuda":
            raise RuntimeError(f"No CUDA device is available ({error}). {CUDA_HELP}") from None
        raise
    return found


_found: dict[str, jax.Device] = {}
