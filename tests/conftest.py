"""Shared fixtures: tiny models built from configs, never downloaded."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import pytest

from quantbench.runner import quiet_libraries

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach the hub
# The machine's ceilings (quantbench.measure.ceiling_cache) are cached under the
# checkout's .pytest_cache, never the user's: measured once per checkout and machine.
os.environ["XDG_CACHE_HOME"] = str(Path(__file__).resolve().parents[1] / ".pytest_cache" / "xdg")
quiet_libraries()

# Every worker of the tests (spawned, or a CLI run in a subprocess: both inherit the
# environment) loads tests/fault_hooks.py, which does nothing unless a test sets
# $QUANTBENCH_FAULT. Production code knows only the generic hook seam.
FAULT_HOOK = f"{Path(__file__).with_name('fault_hooks.py')}:inject_fault"
os.environ.setdefault("QUANTBENCH_TEST_HOOKS", FAULT_HOOK)


@pytest.fixture(autouse=True, scope="session")
def _store_in_tmp(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Runs in tests go to a throwaway results store, never ./quantbench.db."""
    path = tmp_path_factory.mktemp("store") / "quantbench.db"
    old = os.environ.get("QUANTBENCH_STORE")
    os.environ["QUANTBENCH_STORE"] = str(path)
    yield
    if old is None:
        os.environ.pop("QUANTBENCH_STORE", None)
    else:
        os.environ["QUANTBENCH_STORE"] = old


@pytest.fixture(autouse=True)
def _process_state_kept(request: pytest.FixtureRequest) -> None:
    """quantbench gives the caller's process back as it found it: torch's threads and the
    CPUs it may use (a run measured in this process, doctor, a recipe). A test that
    leaves them changed fails here, and the tests after it start from the usual state."""
    import torch

    threads, cpus = torch.get_num_threads(), os.sched_getaffinity(0)
    yield
    now, now_cpus = torch.get_num_threads(), os.sched_getaffinity(0)
    torch.set_num_threads(threads)
    os.sched_setaffinity(0, cpus)
    assert (now, now_cpus) == (threads, cpus), (
        f"{request.node.name} left torch at {now} threads (was {threads}), "
        f"CPUs {sorted(now_cpus)} (was {sorted(cpus)})"
    )


def _tiny_bert_config(**extra):
    from transformers import BertConfig

    base = dict(
        vocab_size=120, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=64,
    )  # fmt: skip
    return BertConfig(**{**base, **extra})


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A save_pretrained directory of a 2-layer BERT (base model, no head)."""
    import torch
    from transformers import BertModel

    torch.manual_seed(0)
    d = tmp_path_factory.mktemp("tiny-bert")
    BertModel(_tiny_bert_config()).save_pretrained(d)
    return d


@pytest.fixture(scope="session")
def tiny_classifier_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A save_pretrained directory of a 2-layer BERT sequence classifier (3 labels)."""
    import torch
    from transformers import BertForSequenceClassification

    torch.manual_seed(0)
    d = tmp_path_factory.mktemp("tiny-clf")
    BertForSequenceClassification(_tiny_bert_config(num_labels=3)).save_pretrained(d)
    return d


@pytest.fixture(scope="session")
def resnet18_state_dict(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A torchvision resnet18 state_dict with 10 classes, as a user would save it."""
    import torch
    import torchvision

    torch.manual_seed(1)
    path = tmp_path_factory.mktemp("sd") / "resnet18-10.pt"
    torch.save(torchvision.models.resnet18(num_classes=10).state_dict(), path)
    return path


def fast_overrides(**kw):
    """Spec overrides for a tiny, quick run."""
    base = {
        "image_sizes": [32, 48],
        "vision_batch_sizes": [1, 2],
        "seq_lens": [8, 16],
        "text_batch_sizes": [1, 2],
        "ref_image_size": 32,
        "ref_seq_len": 16,
        "min_runs": 3,
        "min_time_s": 0.0,
        "warmup": 1,
        "calib_batches": 2,
        "calib_batch_size": 2,
        "fidelity_batch_size": 2,
    }
    base.update(kw)
    return base


def load_script(rel_path: str, name: str):
    """Import a script of the repo (examples/, benchmarks/) as a module, by path."""
    import importlib.util

    path = Path(__file__).parent.parent / rel_path
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# examples/digits.py: the same code writes, trains and documents the digits flow.
DIGITS = load_script("examples/digits.py", "quantbench_digits_example")
digits_spec = DIGITS.data_spec


@pytest.fixture(scope="session")
def digits_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """scikit-learn's digits as ImageFolder PNGs: train/ (1200) and test/ (597)."""
    return DIGITS.write_digits(tmp_path_factory.mktemp("digits"))


@pytest.fixture(scope="session")
def digits_model(digits_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """(model name, state_dict path): examples/digits_cnn.py trained on digits/train."""
    out = tmp_path_factory.mktemp("digits-model") / "digits_cnn.pt"
    return DIGITS.MODEL, DIGITS.train(digits_dir, out)


_POS = ["good", "great", "fine", "nice", "happy"]
_NEG = ["bad", "awful", "poor", "sad", "ugly"]
_FILL = ["the", "a", "movie", "film", "was", "is", "very", "plot", "acting", "it", "and", "so"]


def _sentiment_rows(n: int, seed: int) -> list[dict]:
    """A synthetic task: label 1 when the sentence holds a positive word, 0 a negative one."""
    import random

    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        label = rng.randrange(2)
        words = rng.choices(_FILL, k=rng.randint(3, 9))
        words.insert(rng.randrange(len(words) + 1), rng.choice(_POS if label else _NEG))
        rows.append({"text": " ".join(words), "label": label})
    return rows


@pytest.fixture(scope="session")
def sentiment(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(classifier directory with its tokenizer, test CSV): a 2-layer BERT trained in the
    fixture on the synthetic sentiment task until it is near perfect."""
    import csv

    import torch
    from transformers import BertForSequenceClassification, BertTokenizer

    root = tmp_path_factory.mktemp("sentiment")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *_POS, *_NEG, *_FILL]
    tok = BertTokenizer(vocab={w: i for i, w in enumerate(vocab)})
    torch.manual_seed(0)
    model = BertForSequenceClassification(_tiny_bert_config(num_labels=2, vocab_size=len(vocab)))
    train = _sentiment_rows(512, seed=1)
    enc = tok([r["text"] for r in train], padding=True, return_tensors="pt")
    labels = torch.tensor([r["label"] for r in train])
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    model.train()
    for _ in range(120):
        idx = torch.randint(0, len(train), (32,))
        out = model(input_ids=enc["input_ids"][idx], attention_mask=enc["attention_mask"][idx],
                    labels=labels[idx])  # fmt: skip
        opt.zero_grad()
        out.loss.backward()
        opt.step()
    model.eval()
    d = root / "model"
    model.save_pretrained(d)
    tok.save_pretrained(d)
    test = root / "test.csv"
    with test.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["text", "label"])
        w.writeheader()
        w.writerows(_sentiment_rows(200, seed=2))
    return d, test


# --------------------------------------------------------------------------- PostgreSQL


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (now)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_postgres(
    root: Path, password: str | None = None, port: int | None = None
) -> tuple[str, str] | None:
    """A throwaway PostgreSQL server from Debian's binaries: ``(url, data_dir)``, or None
    when there are none (``stop_postgres(data_dir)`` stops it). With ``password`` the server requires it (scram-sha-256) on its
    Unix socket and on 127.0.0.1:``port`` alike, and the URL holds it; without, it trusts
    everyone on its Unix socket only. ``root`` must be readable by the server's user (not
    under pytest's tmp dirs when the tests run as root: those are private to root)."""
    import glob
    import pwd

    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
    if not bins:
        return None
    initdb, pg_ctl = f"{bins[-1]}/initdb", f"{bins[-1]}/pg_ctl"
    data, sock = root / "pgdata", root / "pgsock"
    sock.mkdir()
    prefix = pg_user_prefix()
    if prefix is None:
        return None
    init = [*prefix, initdb, "-D", str(data), "-U", "qb"]
    if password is None:
        init.append("--auth=trust")
    else:
        pwfile = root / "pwfile"
        pwfile.write_text(password + "\n")
        init += ["--auth=scram-sha-256", f"--pwfile={pwfile}"]
    if os.geteuid() == 0:
        pw = pwd.getpwnam("postgres")
        for p in root.rglob("*"):
            os.chown(p, pw.pw_uid, pw.pw_gid)
        os.chown(root, pw.pw_uid, pw.pw_gid)
    subprocess.run(init, check=True, capture_output=True)
    if password is not None:
        (root / "pwfile").unlink()
    port = port or 54329
    listen = "127.0.0.1" if password is not None else "''"
    subprocess.run([*prefix, pg_ctl, "-D", str(data), "-w", "-l", str(root / "pg.log"),
                    "-o", f"-k {sock} -c listen_addresses={listen} -p {port}", "start"],
                   check=True, capture_output=True)  # fmt: skip
    if password is None:
        return f"postgresql+psycopg://qb@/postgres?host={sock}&port={port}", str(data)
    return f"postgresql+psycopg://qb:{password}@127.0.0.1:{port}/postgres", str(data)


PG_PASSWORD = "Qb-s3cret-9f41"  # what no file quantbench writes may contain


@pytest.fixture(scope="session")
def pg_with_password():
    """A PostgreSQL server on 127.0.0.1 that requires a password (scram-sha-256):
    ``(url with the password in it, url without it, port)``; user ``qb``, password
    :data:`PG_PASSWORD`. Skipped (failed with ``QUANTBENCH_REQUIRE_PG``) where it cannot
    start."""
    import shutil
    import tempfile

    tmp = Path(tempfile.mkdtemp(prefix="quantbench-pgpw-"))
    os.chmod(tmp, 0o755)
    port = free_port()
    try:
        started = start_postgres(tmp, password=PG_PASSWORD, port=port)
        reason = "no PostgreSQL server binaries (Debian package postgresql)"
    except (subprocess.CalledProcessError, OSError) as e:
        started, reason = None, f"could not start PostgreSQL: {e}"
    if started is None:
        shutil.rmtree(tmp, ignore_errors=True)
        if os.environ.get("QUANTBENCH_REQUIRE_PG"):
            pytest.fail(reason)
        pytest.skip(reason)
    url, data = started
    try:
        yield url, url.replace(f":{PG_PASSWORD}@", "@"), port
    finally:
        stop_postgres(data)
        shutil.rmtree(tmp, ignore_errors=True)


def pg_user_prefix() -> list[str] | None:
    """The command prefix that runs PostgreSQL's binaries as a user initdb accepts
    (initdb refuses root: then 'postgres' through runuser); None when there is none."""
    import pwd
    import shutil

    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return None
    runuser = shutil.which("runuser")
    return None if runuser is None else [runuser, "-u", "postgres", "--"]


def stop_postgres(data_dir: str) -> None:
    import glob

    pg_ctl = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))[-1]
    subprocess.run([*(pg_user_prefix() or []), pg_ctl, "-D", data_dir, "-m", "immediate",
                    "stop"], capture_output=True)  # fmt: skip


# --------------------------------------------------------------------------- endpoints


class SilentServer:
    """A TCP server that accepts every connection and never answers (a hung service, or
    a firewall that swallows the traffic): ``with SilentServer() as s: s.port``. It
    listens on every interface: Ray turns 127.0.0.1 into this machine's address."""

    def __init__(self, host: str = "") -> None:
        import threading

        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:  # closed
                return
            self.held.append(conn)

    def close(self) -> None:
        self.sock.close()
        for c in self.held:
            c.close()

    def __enter__(self) -> SilentServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class TcpProxy:
    """127.0.0.1:``port`` forwarded to ``target`` (host, port) until :meth:`silence`:
    from then on nothing more is forwarded either way, and the connections stay open (a
    server, or the network to it, that stops answering mid-run)."""

    def __init__(self, target: tuple[str, int]) -> None:
        import threading

        self.target = target
        self.silent = threading.Event()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def silence(self) -> None:
        self.silent.set()

    def _accept(self) -> None:
        import threading

        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            if self.silent.is_set():
                self.conns.append(client)  # accepted, never answered
                continue
            server = socket.create_connection(self.target)
            self.conns += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                return
            if not data:
                return
            if self.silent.is_set():
                continue  # swallowed: the other side waits for ever
            try:
                dst.sendall(data)
            except OSError:
                return

    def close(self) -> None:
        self.sock.close()
        for c in self.conns:
            c.close()
