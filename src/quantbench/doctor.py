"""``quantbench doctor``: the machine fingerprint and what will hurt results."""

from __future__ import annotations

from quantbench import env


def doctor() -> str:
    """Human-readable fingerprint plus plain-word warnings."""
    import torch

    h = env.host()
    lines = [
        f"cpu:        {h['cpu']} ({h['machine']})",
        f"cores:      {h['cores']} usable",
        f"isa:        {', '.join(h['isa_flags']) or 'none of interest'}",
        f"os:         {h['os']}",
        f"governor:   {h['governor'] or 'not readable'}",
        f"engines:    {', '.join(env.quantized_engines()) or 'none'} "
        f"(default here: {env.default_engine()})",
        f"threads:    torch intra-op {torch.get_num_threads()}",
        "versions:   " + ", ".join(f"{k} {v}" for k, v in env.versions().items()),
    ]
    warnings = []
    flags = set(h["isa_flags"])
    if h["machine"] in ("x86_64", "AMD64") and not flags & {"avx512_vnni", "avx_vnni", "amx_int8"}:
        warnings.append("no VNNI/AMX int8 instructions: expect small int8 speedups (~1.3x)")
    if not env.quantized_engines():
        warnings.append("this torch has no quantized engine: int8 recipes cannot run")
    if torch.get_num_threads() > h["cores"]:
        warnings.append(f"torch uses {torch.get_num_threads()} threads on {h['cores']} cores")
    lines += [f"warning:    {w}" for w in warnings] or ["warnings:   none"]
    return "\n".join(lines)
