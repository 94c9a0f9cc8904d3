"""The `wae-study` command line: parse, dispatch, and map failures to the exit codes.

0 done; 2 bad input (one line naming the problem and the fix); 130 interrupted (143 by
SIGTERM, 129 by SIGHUP: `study.signals`); 1 otherwise.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import NoReturn

from study.errors import BadInput
from study.signals import interrupted_code, stopping_as_interrupt
from study.storage import REPORT_DIR, Remote, open_experiment
from trainables.data import DataError
from trainables.datasets import DATASETS
from trainables.experiment import EXTRA_FILE, study_file, trial_dirs


class Parser(argparse.ArgumentParser):
    """argparse with the contract's bad input: one line (the usage is in `--help`), exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def text(value: str) -> str:
    """An option's value, refused when empty or blank: an empty --name, --storage or
    --address would otherwise silently mean the default."""
    if not value.strip():
        raise argparse.ArgumentTypeError(f"empty value {value!r}: give one, or leave the "
                                         "option out for its default")
    return value


def path(value: str) -> Path:
    """A path option's value (not empty: Path('') would be the current folder)."""
    return Path(text(value))


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="wae-study",
        description="Ray Tune studies of beta-VAEs and WAEs on dSprites (Rubenstein et al. 2018).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    data = commands.add_parser("data", help="generate, fetch, verify or show a dataset's file")
    data_commands = data.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    generate = data_commands.add_parser(
        "generate", help="render all 737,280 dSprites images into an HDF5 file (official layout)")
    generate.add_argument("--out", type=path, default=None,
                          help="output .h5 file (default: $WAE_STUDY_DATA or the user cache)")
    generate.add_argument("--force", action="store_true", help="overwrite an existing file")
    fetch = data_commands.add_parser(
        "fetch", help="download a dataset's published file (resumable, checked against a "
                      "recorded size and checksum; smallnorb's and cars3d's then converted; "
                      "scream_dsprites: its painting), then verify it")
    fetch.add_argument("name", nargs="?", default="dsprites", choices=DATASETS,
                       metavar="NAME", help="the dataset (default dsprites: the official "
                                            "dSprites .hdf5, which its variants read too; "
                                            "scream_dsprites: its painting); one of "
                                            f"{', '.join(DATASETS)}")
    fetch.add_argument("--out", type=path, default=None,
                       help="output file (default: the user cache, where studies look: for "
                            "dsprites what --data official reads)")
    fetch.add_argument("--url", type=text, default=None,
                       help="a mirror of the published file (smallnorb: of the folder of its "
                            "six files; default for dsprites: $WAE_STUDY_DSPRITES_URL, else "
                            "DeepMind's repository)")
    verify = data_commands.add_parser(
        "verify", help="check a dataset's file: an official dSprites .npz/.hdf5, a generated "
                       "one, or another dataset's published file")
    verify.add_argument("path", type=path)
    verify.add_argument("--dataset", default=None, choices=DATASETS, metavar="NAME",
                        help="whose file it is (default: the dataset whose published file "
                             "has this name, else dsprites)")
    show = data_commands.add_parser("show", help="write a picture of sample images")
    show.add_argument("path", type=path)
    show.add_argument("--out", type=path, required=True, help="output .png")
    show.add_argument("--dataset", default=None, choices=DATASETS, metavar="NAME",
                      help="show the images as this dataset does (e.g. color_dsprites from "
                           "the dSprites file; default as for verify)")

    presets = commands.add_parser("presets", help="list the built-in study presets")
    presets.add_argument("--show", type=text, metavar="NAME",
                         help="print one preset as resolved TOML")

    run = commands.add_parser("run", help="run a study (a preset name or a TOML spec)")
    run.add_argument("spec", type=text, metavar="SPEC", help="preset name or TOML file")
    run.add_argument("--name", type=text, help="experiment name (default: SPEC name + time stamp)")
    run.add_argument("--storage", type=text, help="folder holding experiments, shared by all "
                     "nodes on a cluster, or object storage: s3://BUCKET/PREFIX (endpoint from "
                     "$AWS_ENDPOINT_URL, credentials from the AWS variables), gs://, abfs://, "
                     "hdfs:// (default: $WAE_STUDY_STORAGE or ./experiments)")
    run.add_argument("--address", type=text, help="join a Ray cluster: 'auto' or HOST:PORT "
                     "(default: start Ray locally)")
    run.add_argument("--gpus-per-trial", type=float, dest="gpus_per_trial",
                     help="GPUs per trial, fractions allowed (default from the spec)")
    run.add_argument("--cpus-per-trial", type=float, dest="cpus_per_trial",
                     help="CPUs per trial (default from the spec)")
    run.add_argument("--max-concurrent", type=int, dest="max_concurrent",
                     help="most trials at once (0 = as resources allow)")
    run.add_argument("--max-failures", type=int, dest="max_failures",
                     help="retries per trial, each from its last checkpoint")
    run.add_argument("--data", type=data_file, help="dSprites file (official .npz/.hdf5 or "
                     "generated; `official`: the file `data fetch` downloaded); default: the "
                     "generated file, rendered if missing")
    run.add_argument("--tracking", type=text, metavar="mlflow[=URI]|wandb[=PROJECT]", default=None,
                     help="one tracker run per trial: MLflow (default URI: "
                          "sqlite:///<experiment>/mlflow.db) or Weights & Biases (default "
                          "project: the study's name); sets the spec's [tracking] table")
    run.add_argument("--set", action="append", default=[], metavar="TABLE.KEY=VALUE",
                     help="override a spec value, e.g. --set train.steps=500 (repeatable)")

    resume = commands.add_parser("resume", help="continue an interrupted study")
    resume.add_argument("experiment", type=text, metavar="EXPERIMENT_DIR", help=EXPERIMENT_HELP)
    resume.add_argument("--address", type=text, help="join a Ray cluster: 'auto' or HOST:PORT")

    status = commands.add_parser("status", help="trials by state, steps done, best so far")
    status.add_argument("experiment", type=text, metavar="EXPERIMENT_DIR", help=EXPERIMENT_HELP)

    report = commands.add_parser("report", help="write the report of a (partial) study")
    report.add_argument("experiment", type=text, metavar="EXPERIMENT_DIR", help=EXPERIMENT_HELP)
    report.add_argument("--out", type=path, help="report folder (default EXPERIMENT_DIR/report; "
                        "for a URI, the local mirror's, uploaded to URI/report/)")
    report.add_argument("--data", type=data_file,
                        help="dSprites file for the reconstruction figure")
    report.add_argument("--compare", type=text, metavar="OTHER_EXPERIMENT_DIR",
                        help="show another experiment's fronts beside this one's, in one box "
                        "(e.g. the grid study a PBT population extends)")

    evaluate = commands.add_parser(
        "evaluate", help="re-score the final checkpoints with more metrics, then the report")
    evaluate.add_argument("experiment", type=text, metavar="EXPERIMENT_DIR", help=EXPERIMENT_HELP)
    evaluate.add_argument("--metrics", type=text, required=True, metavar="NAMES",
                          help="comma-separated, from: higgins (every task of the study's "
                          "dataset, re-scored into disentanglement_<task>_c<steps>, e.g. "
                          "disentanglement_5var_c<steps>), mig, factorvae, dci, sap")
    evaluate.add_argument("--classifier-steps", type=int, default=100_000, metavar="N",
                          help="the authors' Higgins classifier's steps for --metrics higgins "
                          "(default: their full 100,000)")
    evaluate.add_argument("--data", type=data_file, help="dSprites file (default: the spec's "
                          "data_path, else the generated file)")
    return parser


def list_presets(show: str | None) -> int:
    from study import spec
    from study.presets import PRESETS

    if show is None:
        width = max(map(len, PRESETS))
        for name, preset in PRESETS.items():
            print(f"{name:{width}s}  {preset.description}")
        return 0
    if show not in PRESETS:
        raise BadInput(f"unknown preset '{show}'; choose one of {', '.join(PRESETS)}")
    from study import compare

    if compare.is_comparison(show):
        print(compare.dumps(compare.load(show)), end="")
        return 0
    print(spec.dumps(spec.load(show)), end="")
    return 0


EXPERIMENT_HELP = ("the experiment folder, or its storage URI (s3://BUCKET/PREFIX/NAME), "
                   "as `wae-study run` printed it")


def experiment_folder(text: str, checkpoints: bool = False) -> tuple[Path, Remote | None]:
    """An experiment argument: a folder, or a URI pulled into its local mirror (with each
    trial's newest checkpoint if `checkpoints`), `study.storage.open_experiment`."""
    path, remote = open_experiment(text, checkpoints)
    if remote is None and not study_file(path).exists() and not path.is_dir():
        raise BadInput(f"{path} does not exist; pass the experiment folder `wae-study run` "
                       "printed")
    return path, remote


def dispatch(args: argparse.Namespace) -> int:
    if args.command == "data":
        from study import data_commands

        if args.data_command == "generate":
            return data_commands.generate(args.out, args.force)
        if args.data_command == "fetch":
            return data_commands.fetch(args.name, args.out, args.url)
        if args.data_command == "verify":
            return data_commands.verify(args.path, args.dataset)
        return data_commands.show(args.path, args.out, args.dataset)
    if args.command == "presets":
        return list_presets(args.show)
    if args.command == "run":
        from study import compare, runner

        flags = {key: getattr(args, key) for key in
                 ("cpus_per_trial", "gpus_per_trial", "max_concurrent", "max_failures")}
        overrides = [*args.set, *tracking_overrides(args.tracking)]
        if compare.is_comparison(args.spec):  # the flags as what they set: [resources] keys
            resources = [f"resources.{k}={v}" for k, v in flags.items() if v is not None]
            return compare.run(args.spec, [*overrides, *resources], args.name, args.storage,
                               args.address, args.data)
        return runner.run(args.spec, overrides, args.name, args.storage, args.address, flags,
                          args.data)
    if args.command == "resume":
        from study import compare, runner

        if compare.is_comparison_folder(Path(args.experiment)):
            return compare.resume(Path(args.experiment), args.address)
        path, remote = experiment_folder(args.experiment)
        return runner.resume(path, args.address, remote)
    if args.command == "status":
        from study.status import status

        return status(experiment_folder(args.experiment)[0])
    if args.command == "report":
        from study import compare
        from study.report_command import report

        if compare.is_comparison_folder(Path(args.experiment)):
            compare.print_answer(compare.report(Path(args.experiment)))
            return 0
        other = experiment_folder(args.compare)[0] if args.compare else None
        path, remote = experiment_folder(args.experiment, checkpoints=True)
        code = report(path, args.out, args.data, other)
        if remote and args.out is None:
            remote.push(REPORT_DIR)
        return code
    if args.command == "evaluate":
        from study.evaluate_command import evaluate

        path, remote = experiment_folder(args.experiment, checkpoints=True)
        code = evaluate(path, args.metrics, args.data, args.classifier_steps)
        if remote:
            remote.push(*(f"{d.name}/{EXTRA_FILE}" for d in trial_dirs(path)), REPORT_DIR)
        return code
    raise AssertionError(f"unhandled command {args.command}")


def tracking_overrides(text: str | None) -> list[str]:
    """`--tracking mlflow[=URI]` / `wandb[=PROJECT]` as `--set` overrides of [tracking]."""
    if text is None:
        return []
    backend, equals, where = text.partition("=")
    if backend not in ("mlflow", "wandb"):
        raise BadInput(f"--tracking must be mlflow[=URI] or wandb[=PROJECT], got {text!r}")
    key = "uri" if backend == "mlflow" else "project"
    if equals and not where.strip():
        raise BadInput(f"--tracking {text!r} names no {key.upper()}: give one after '=', or "
                       f"pass --tracking {backend} for the default")
    return [f"tracking.backend={backend}", *([f"tracking.{key}={where!r}"] if where else [])]


def data_file(value: str) -> Path:
    """A --data value: a file path, or `official` for the file `data fetch` downloaded."""
    if value != "official":
        return path(value)
    from trainables.data import official_path

    official = official_path()
    if not official.is_file():
        raise argparse.ArgumentTypeError(f"no official dSprites file at {official}: run "
                                         "`wae-study data fetch` first")
    return official


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as done:  # --help, or a usage error: one line, exit 2
        return int(done.code or 0)
    with stopping_as_interrupt():
        try:
            code = dispatch(args)
        except (BadInput, DataError) as err:
            print(f"wae-study: error: {err}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("wae-study: interrupted", file=sys.stderr)
            code = 130
        return interrupted_code() if code == 130 else code


if __name__ == "__main__":
    sys.exit(main())
