"""A district's federated node: the tool a district's IT department runs next to its private
partition, on its own machine. The rows never leave it; Flower's SuperNode trains on them for
the runs that the platform's standing SuperLink sends.

    python -m sandbox.federated.node init --home DIR --name NAME
        a node key pair (EC P-384, OpenSSH); prints the public key the platform registers
    python -m sandbox.federated.node ingest --home DIR --dataset SLUG FILE [--crs CRS]
    python -m sandbox.federated.node ingest --home DIR --dataset SLUG --generate SEED:ROOMS --district NAME
        validates the district's own file with the platform's ingest (corpora.ingest: the same
        checks, the same refusals) and writes the partition the ClientApp reads,
        DIR/partitions/SLUG/units.parquet; --generate makes a demo district's rows instead
    python -m sandbox.federated.node publish --home DIR --dataset SLUG [--out FILE]
        what the platform's catalog needs, as JSON: the schema, counts, coarse coverage cells,
        the neighbourhood vocabulary, synthetic mock rows made from the schema, the node's
        device. Never a row.
    python -m sandbox.federated.node start --home DIR --superlink HOST:PORT --root-certificates CA
        runs `flower-supernode` against the standing SuperLink with the node's key, reading
        the partitions under DIR/partitions (it replaces this process)

Each node has its own state folder (`--home`): its keys, its partitions, its settings.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PARTITIONS = "partitions"
MOCK_ROWS = 50


class NodeError(ValueError):
    """A node-side command refused its input; nothing was written."""


def _platform_path() -> None:
    """corpora's ingest core is plain Python in platform/: importable without Django."""
    for path in (str(REPO / "platform"), str(REPO)):
        if path not in sys.path:
            sys.path.insert(0, path)


def settings_of(home: Path) -> dict:
    path = home / "node.json"
    if not path.exists():
        raise NodeError(f"--home: {home} is not a node's folder (run `init` first)")
    return json.loads(path.read_text())


def key_paths(home: Path) -> tuple[Path, Path]:
    return home / "keys" / "node", home / "keys" / "node.pub"


def init(home: Path, name: str) -> str:
    """Make the node's folder and key pair; the public key (OpenSSH text)."""
    from .deploy import make_node_keys

    if not name or not name.replace("-", "").replace("_", "").isalnum():
        raise NodeError("--name: letters, digits, - and _ only")
    private, public = key_paths(home)
    if private.exists():
        raise NodeError(f"--home: {home} already holds a node key; a node is initialised once")
    home.mkdir(parents=True, exist_ok=True)
    make_node_keys(home / "keys", "node")
    (home / "node.json").write_text(json.dumps({"name": name}))
    (home / PARTITIONS).mkdir(exist_ok=True)
    return public.read_text().strip()


def partition_dir(home: Path, dataset: str) -> Path:
    if not dataset or "/" in dataset or dataset.startswith("."):
        raise NodeError("--dataset: a dataset's slug")
    return home / PARTITIONS / dataset


def generated_file(folder: Path, *, seed: int, rooms: int, district: str) -> Path:
    """A demo district's own rows as a GeoParquet file, as a district would export them: the
    generated city's units of `district` alone."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq
    from pyproj import CRS

    _platform_path()
    from corpora.generator import generate_district

    tables = [t.filter(pc.equal(t["district"], district)) for t in generate_district(seed=seed, rooms=rooms)]
    table = pa.concat_tables(tables)
    if table.num_rows == 0:
        raise NodeError(f"--district: the generated city has no district {district!r}")
    geo = {"version": "1.0.0", "primary_column": "geometry",
           "columns": {"geometry": {"encoding": "WKB", "crs": CRS("EPSG:4490").to_json_dict()}}}
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), b"geo": json.dumps(geo).encode()})
    path = folder / "export.parquet"
    pq.write_table(table, path)
    return path


def ingest(home: Path, dataset: str, source: Path, *, declared_crs: str | None = None) -> dict:
    """Validate the district's file with the platform's ingest and write its partition (all
    or nothing: a refused file leaves the partition as it was). The partition's summary."""
    settings_of(home)
    _platform_path()
    from corpora import store
    from corpora.ingest import read_units

    target = partition_dir(home, dataset)
    result = read_units(source, declared_crs=declared_crs)  # IngestError names the row and field
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
        staged = Path(scratch) / "units.parquet"
        summary = store.write_corpus([result.table], staged)
        manifest = {"dataset": dataset, "units": summary.units, "kinds": summary.kinds, "sha256": summary.sha256,
                    "source_crs": result.source_crs, "fields": store.schema_fields(staged),
                    "cells": sorted(summary.cells), "cell_level": store.COVER_LEVEL,
                    "extent": [round(float(v), 3) for v in summary.extent]}
        (Path(scratch) / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False))
        if target.exists():
            import shutil

            shutil.rmtree(target)
        os.replace(scratch, target)
        os.chmod(target, 0o750)
        Path(scratch).mkdir()  # TemporaryDirectory removes its (now empty) folder on the way out
    return manifest


def device() -> str:
    """The device the node trains on: `cpu`, or `cuda:<name of the GPU>`."""
    import torch

    return f"cuda:{torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else "cpu"


def publish(home: Path, dataset: str) -> dict:
    """What the platform's catalog needs of the node's partition: schema, counts, coarse cells,
    the neighbourhood vocabulary (public place names), synthetic mock rows. Never a row."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    _platform_path()
    from corpora.mock import mock_seed, mock_units

    node = settings_of(home)
    folder = partition_dir(home, dataset)
    if not (folder / "manifest.json").exists():
        raise NodeError(f"--dataset: this node holds no partition of {dataset!r} (run `ingest` first)")
    manifest = json.loads((folder / "manifest.json").read_text())
    hoods = pq.read_table(folder / "units.parquet", columns=["neighbourhood"])["neighbourhood"]
    kinds = sorted(manifest["kinds"])
    mock = mock_units(seed=mock_seed(f"{dataset}:{node['name']}"), rows=MOCK_ROWS, kinds=kinds)
    mock = mock.drop_columns([c for c in mock.column_names if c == "geometry"])
    return {"node": node["name"], "dataset": dataset, "device": device(), "units": manifest["units"],
            "kinds": manifest["kinds"], "fields": manifest["fields"], "cells": manifest["cells"],
            "cell_level": manifest["cell_level"], "sha256": manifest["sha256"],
            "neighbourhoods": sorted(v for v in pc.unique(hoods).to_pylist() if v),
            "mock": pa.Table.to_pylist(mock)}


def start_argv(home: Path, superlink: str, root_certificates: Path, runtime_port: int) -> list[str]:
    """The node's `flower-supernode` command line (run through `sandbox.federated.supernode`,
    which polls the SuperLink more often): its ClientApps are started by the node's warm
    launcher (`sandbox.federated.launcher`) from the Runtime API on `runtime_port`."""
    from .deploy import node_config

    node = settings_of(home)
    private, _ = key_paths(home)
    config = node_config({"partitions": str((home / PARTITIONS).resolve()), "node-name": node["name"],
                          "device": device()})
    return [sys.executable, "-m", "sandbox.federated.supernode", "--root-certificates", str(root_certificates),
            "--superlink", superlink, "--auth-supernode-private-key", str(private), "--isolation", "process",
            "--host", "127.0.0.1", "--port", str(runtime_port), "--node-config", config]


def spawn(home: Path, superlink: str, root_certificates: Path, *, log: Path, **popen) -> subprocess.Popen:
    """`start` as a process of its own (what a district's service manager runs), its output
    appended to `log`."""
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "sandbox.federated.node", "start", "--home", str(home),
                                 "--superlink", superlink, "--root-certificates", str(root_certificates)],
                                cwd=REPO, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, **popen)


LAUNCHER_READY_S = 300  # the most `start` waits for the launcher's warm-up before going online


def start(home: Path, superlink: str, root_certificates: Path) -> None:
    """Become the node's SuperNode, with its launcher as a child that exits when it does (the
    launcher is started first and knows this process id, which `exec` keeps).

    The node goes online once its launcher has warmed up (imports, a few DP-SGD steps): a job
    submitted to a node that is online then starts at once, instead of waiting out the warm-up
    in its first round. A launcher that dies while warming up stops the start with its error
    (in the node's log, above); one still warming up after `LAUNCHER_READY_S` is left to finish
    while the node goes online."""
    import select

    from .deploy import flower_env, free_port

    port = free_port()
    argv = start_argv(home, superlink, root_certificates, port)
    env = flower_env(home / "flwr")
    os.chdir(home)
    ready, told = os.pipe()
    launcher = subprocess.Popen([sys.executable, "-m", "sandbox.federated.launcher", "--runtime-api-address",
                                 f"127.0.0.1:{port}", "--parent-pid", str(os.getpid()), "--ready-fd", str(told)],
                                env=env, stdin=subprocess.DEVNULL, pass_fds=(told,))
    os.close(told)
    waited, _, _ = select.select([ready], [], [], LAUNCHER_READY_S)
    word = os.read(ready, 16) if waited else b"late"
    os.close(ready)
    if word == b"":  # the pipe closed without a word: the launcher is gone
        code = launcher.wait()
        raise SystemExit(f"the node's ClientApp launcher exited while warming up (exit code {code}); its error is "
                         "above in this log")
    if word == b"late":
        print(f"the node's ClientApp launcher is still warming up after {LAUNCHER_READY_S} s; going online, "
              "and its first ClientApps will wait for it", file=sys.stderr, flush=True)
    os.execve(argv[0], argv, env)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox.federated.node", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("init", "ingest", "publish", "start"):
        sub = commands.add_parser(name)
        sub.add_argument("--home", type=Path, required=True, help="the node's state folder")
        if name == "init":
            sub.add_argument("--name", required=True)
        if name in ("ingest", "publish"):
            sub.add_argument("--dataset", required=True, help="the dataset's slug on the platform")
        if name == "ingest":
            sub.add_argument("file", type=Path, nargs="?", help="the district's GeoJSON, GeoPackage or GeoParquet")
            sub.add_argument("--crs", default=None, help="the file's CRS where it states none")
            sub.add_argument("--generate", default=None, metavar="SEED:ROOMS", help="demo rows instead of a file")
            sub.add_argument("--district", default=None, help="with --generate: the district whose rows to keep")
        if name == "publish":
            sub.add_argument("--out", type=Path, default=None, help="write the JSON here (default: stdout)")
        if name == "start":
            sub.add_argument("--superlink", required=True, help="the SuperLink's address, host:port")
            sub.add_argument("--root-certificates", type=Path, required=True, help="the federation's CA (PEM)")
    args = parser.parse_args(argv)
    home = args.home.resolve()
    try:
        if args.command == "init":
            print(init(home, args.name))
        elif args.command == "ingest":
            if (args.file is None) == (args.generate is None):
                raise NodeError("ingest: give the district's file, or --generate SEED:ROOMS --district NAME")
            if args.generate:
                seed, _, rooms = args.generate.partition(":")
                if not (seed.isdigit() and rooms.isdigit()) or not args.district:
                    raise NodeError("--generate: SEED:ROOMS (two whole numbers), with --district")
                settings_of(home)
                with tempfile.TemporaryDirectory(dir=home) as scratch:
                    source = generated_file(Path(scratch), seed=int(seed), rooms=int(rooms), district=args.district)
                    summary = ingest(home, args.dataset, source)
            else:
                summary = ingest(home, args.dataset, args.file, declared_crs=args.crs)
            print(json.dumps({k: summary[k] for k in ("dataset", "units", "kinds", "sha256")}, ensure_ascii=False))
        elif args.command == "publish":
            text = json.dumps(publish(home, args.dataset), ensure_ascii=False)
            if args.out:
                args.out.write_text(text)
            else:
                print(text)
        elif args.command == "start":
            start(home, args.superlink, args.root_certificates)
    except ValueError as exc:  # NodeError, and corpora's IngestError (it names the row and field)
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
