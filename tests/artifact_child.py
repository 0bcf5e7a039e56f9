"""The fresh-process half of the artifact contract test (tests/test_artifact_contract.py).

``python artifact_child.py JOB.pt OUT.pt``: JOB maps a key to an artifact file, the inputs
and their names; for each file this process (which built nothing) loads it with
``quantbench.load_artifact``, calls it by keyword and by position, and saves both outputs
(or the error) with the load time to OUT.
"""

from __future__ import annotations

import sys
import time

import torch

import quantbench


def main(job_path: str, out_path: str) -> None:
    job = torch.load(job_path, weights_only=True)
    results: dict[str, dict] = {}
    for key, entry in job.items():
        path, inputs, names = entry["path"], tuple(entry["inputs"]), list(entry["names"])
        try:
            t = time.perf_counter()
            model = quantbench.load_artifact(path, trust_code=True)
            load_s = time.perf_counter() - t
            with torch.inference_mode():
                by_name = model(**dict(zip(names, inputs, strict=True)))
                by_position = model(*inputs)
            results[key] = {"by_name": by_name, "by_position": by_position, "load_s": load_s}
        except Exception as e:  # reported to the test, which fails naming the file
            results[key] = {"error": f"{type(e).__name__}: {str(e).splitlines()[0][:300]}"}
    torch.save(results, out_path)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
