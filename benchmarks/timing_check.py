"""Does quantbench's timing loop tell the truth? Two checks, side by side in one process.

1. Overhead: for a forward pass of about 1 ms, quantbench's loop (clock reads, list
   appends, rotation) against a bare ``for`` loop timed as a whole. Target: < 2%.
2. Agreement: quantbench's median against ``torch.utils.benchmark.Timer(...)
   .blocked_autorange()`` for the same model and inputs. Target: within 10%.

Methods are interleaved over several rounds so machine drift hits all of them alike;
the numbers printed are medians over rounds.

    .venv/bin/python benchmarks/timing_check.py [--rounds 7] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.utils.benchmark as tb

from quantbench.measure.latency import TimingPolicy, summarize, time_interleaved


def mlp_of_about(ms: float) -> tuple[torch.nn.Module, torch.Tensor]:
    """An MLP and a batch whose forward takes about ``ms`` milliseconds here."""
    model = torch.nn.Sequential(
        torch.nn.Linear(512, 2048), torch.nn.ReLU(), torch.nn.Linear(2048, 512)
    ).eval()
    batch = 1
    with torch.inference_mode():
        while True:
            x = torch.randn(batch, 512)
            for _ in range(5):
                model(x)
            t0 = time.perf_counter()
            for _ in range(20):
                model(x)
            if (time.perf_counter() - t0) / 20 * 1000 >= ms or batch >= 4096:
                return model, x
            batch *= 2


def bare_loop_ms(fn, n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n * 1000


def quantbench_ms(fn, n: int) -> tuple[float, float]:
    s = time_interleaved({"m": fn}, TimingPolicy(warmup=2, max_warmup=2, min_runs=n))["m"]
    st = summarize(s)
    return st.mean, st.median


def timer_ms(fn, seconds: float) -> float:
    m = tb.Timer(stmt="fn()", globals={"fn": fn}, num_threads=torch.get_num_threads())
    return m.blocked_autorange(min_run_time=seconds).median * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")

    with torch.inference_mode():
        model, x = mlp_of_about(1.0)

        def fwd():
            return model(x)

        n = 500
        for _ in range(50):
            fwd()
        bare, qb_mean, qb_med, timer = [], [], [], []
        for _ in range(args.rounds):
            bare.append(bare_loop_ms(fwd, n))
            mean, med = quantbench_ms(fwd, n)
            qb_mean.append(mean)
            qb_med.append(med)
            timer.append(timer_ms(fwd, 0.5))
        overhead = [(q - b) / b for q, b in zip(qb_mean, bare, strict=True)]
        agree = [q / t for q, t in zip(qb_med, timer, strict=True)]
        print(f"\n1 ms MLP (batch {x.shape[0]}), {n} passes per method, {args.rounds} rounds")
        print(f"  bare loop mean        {statistics.median(bare):.4f} ms")
        print(f"  quantbench mean       {statistics.median(qb_mean):.4f} ms")
        print(f"  quantbench median     {statistics.median(qb_med):.4f} ms")
        print(f"  Timer.blocked_autorange median {statistics.median(timer):.4f} ms")
        print(
            f"  loop overhead (quantbench mean / bare mean - 1): median {statistics.median(overhead):+.2%}"
            f"  [target < 2%: {'PASS' if statistics.median(overhead) < 0.02 else 'FAIL'}]"
        )
        print(
            f"  agreement (quantbench median / Timer median): median {statistics.median(agree):.3f}"
            f"  [target within 10%: {'PASS' if abs(statistics.median(agree) - 1) <= 0.10 else 'FAIL'}]"
        )

        import torchvision

        cnn = torchvision.models.resnet18().eval()
        img = torch.randn(1, 3, 224, 224)

        def cnn_fwd():
            return cnn(img)

        for _ in range(3):
            cnn_fwd()
        qb, tm = [], []
        for _ in range(max(3, args.rounds // 2)):
            qb.append(quantbench_ms(cnn_fwd, 20)[1])
            tm.append(timer_ms(cnn_fwd, 0.5))
        ratio = statistics.median(q / t for q, t in zip(qb, tm, strict=True))
        print(f"\nresnet18 fp32, batch 1, 224 px (random weights), {len(qb)} rounds")
        print(
            f"  quantbench median {statistics.median(qb):.2f} ms, Timer median {statistics.median(tm):.2f} ms,"
            f" ratio {ratio:.3f}  [target within 10%: {'PASS' if abs(ratio - 1) <= 0.10 else 'FAIL'}]"
        )


if __name__ == "__main__":
    main()
