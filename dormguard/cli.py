"""The `dormguard` command: one entry point, one subcommand per daemon or tool."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel

from contracts.yamlconfig import ConfigError, load_yaml_model

log = logging.getLogger("dormguard")
M = TypeVar("M", bound=BaseModel)


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


CONFIG_KINDS = ("gate", "devices", "gateway")


def _config_kind(path: Path) -> str:
    """Which daemon a config file is for, judged by its top-level keys."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return "gate"  # let the loader report the problem with its line
    if isinstance(data, dict) and "devices" in data and "gate" not in data:
        return "devices"
    if isinstance(data, dict) and "gate" not in data and {"database", "api", "gates"} & set(data):
        return "gateway"
    return "gate"


def _cmd_validate_config(args: argparse.Namespace) -> int:
    from edge.devices.config import DevicesConfig
    from edge.gate.config import GateConfig

    path = Path(args.file)
    kind = args.kind or _config_kind(path)
    try:
        if kind == "devices":
            producer = load_yaml_model(path, DevicesConfig).producer_id
        elif kind == "gateway":
            from gateway.config import GatewayConfig

            producer = f"gateway of site {load_yaml_model(path, GatewayConfig).site}"
        else:
            producer = load_yaml_model(path, GateConfig).producer_id
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    print(f"{args.file}: valid {kind} configuration for {producer}")
    return 0


def _run_daemon(
    name: str,
    path: Path,
    model: type[M],
    run: Callable[[M], int],
    *startup_errors: type[Exception],
) -> int:
    """Load a config, run a daemon; config and start-up failures print what and where, exit 2."""
    try:
        config = load_yaml_model(path, model)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    caught: tuple[type[Exception], ...] = (ValueError, RuntimeError, OSError, *startup_errors)
    try:
        return run(config)
    except caught as exc:
        # Start-up failures (key, outbox file, GPIO extra, broker secret): say what and where.
        print(f"dormguard {name}: {exc}", file=sys.stderr)
        return 2


def _cmd_devices(args: argparse.Namespace) -> int:
    from edge.devices.app import run_bridge
    from edge.devices.config import DevicesConfig

    return _run_daemon("devices", Path(args.config), DevicesConfig, run_bridge)


def _cmd_gate(args: argparse.Namespace) -> int:
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from contracts.gallery_crypto import GalleryKeyError
    from edge.gate.app import run_gate
    from edge.gate.config import GateConfig

    return _run_daemon("gate", Path(args.config), GateConfig, run_gate, GalleryKeyError)


def _cmd_calibrate(args: argparse.Namespace) -> int:
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from edge.calibrate import (
        calibrate,
        default_encoder,
        encode_photo_dir,
        format_report,
        report_to_json,
    )

    try:
        encodings, skipped = encode_photo_dir(Path(args.photo_dir), default_encoder)
        report = calibrate(encodings, target_fpir=args.target_fpir, skipped=skipped)
    except ValueError as exc:
        print(f"dormguard calibrate: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report_to_json(report)))
    else:
        print(format_report(report))
    return 0


def _cmd_nir(args: argparse.Namespace) -> int:
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from edge.gate.config import GateConfig
    from edge.gate.nir_calibration import measure_folder, record_pairs, report

    try:
        config = load_yaml_model(Path(args.config), GateConfig)
        nir = config.liveness.nir
        if nir is None:
            raise ValueError("the config has no liveness.nir section (liveness.mode passive+nir)")
        if args.nir_command == "record":
            saved = record_pairs(config, Path(args.out), args.frames, args.timeout)
            print(f"{saved} pairs saved in {args.out} (face images: delete them when done)")
            return 0 if saved else 1
        from edge.gate.nir_check import NirCheck, crop_face_px
        from faces.engine import DlibFaceEngine

        engine = DlibFaceEngine(
            scale=config.detection.scale,
            upsample=config.detection.upsample,
            min_face_px=config.detection.min_face_px,
        )
        face_px = crop_face_px(config.detection.scale, config.detection.min_face_px)
        check = NirCheck(engine, nir.rule(), nir.alignment, face_px)
        folder = Path(args.folder)
        live = measure_folder(check, folder / "live")
        attacks = measure_folder(check, folder / "attack")
    except (ConfigError, ValueError) as exc:
        print(f"dormguard nir: {exc}", file=sys.stderr)
        return 2
    print(report(live, attacks, nir.rule()))
    return 0


def _write_secret(out: Path, text: str, force: bool) -> bool:
    """Write a key file readable by its owner only; False (and a message) if it exists."""
    if out.exists() and not force:
        print(f"{out} exists; use --force to replace it", file=sys.stderr)
        return False
    out.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text + "\n")
    return True


def _cmd_gallery_keygen(args: argparse.Namespace) -> int:
    from contracts.gallery_crypto import generate_key

    if not _write_secret(Path(args.out), generate_key(), args.force):
        return 2
    print(f"wrote a new gallery key to {args.out} (mode 600)")
    return 0


def _cmd_keys_generate(args: argparse.Namespace) -> int:
    from contracts.signing import MessageSigner, generate_private_key_text, parse_private_key

    text = generate_private_key_text()
    if not _write_secret(Path(args.out), text, args.force):
        return 2
    signer = MessageSigner(parse_private_key(text))
    print(f"wrote a new command signing key to {args.out} (mode 600), key id {signer.key_id}")
    print("gateway: command_signing.private_key.file: " + args.out)
    print(f"gates:   command_auth.trusted_keys: [{signer.public_key}]")
    return 0


def _cmd_keys_public(args: argparse.Namespace) -> int:
    from contracts.signing import MessageSigner, parse_private_key

    try:
        signer = MessageSigner(parse_private_key(Path(args.key).read_text(encoding="utf-8")))
    except (OSError, ValueError) as exc:
        print(f"{args.key}: {exc}", file=sys.stderr)
        return 2
    print(signer.public_key)
    return 0


def _cmd_gallery_build(args: argparse.Namespace) -> int:
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from contracts.gallery import GalleryError
    from contracts.gallery_crypto import load_key
    from edge.gate.enrol import build_gallery_from_files
    from edge.gate.gallery import GalleryStore

    try:
        key = load_key(key_file=Path(args.key_file), key_env=None)
        gallery, problems = build_gallery_from_files(
            Path(args.people), Path(args.photos) if args.photos else None, version=args.version
        )
    except (ValueError, ConfigError, GalleryError) as exc:
        print(f"dormguard gallery build: {exc}", file=sys.stderr)
        return 2
    for problem in problems:
        print(f"skipped {problem}", file=sys.stderr)
    GalleryStore(Path(args.out), key).save(gallery)
    print(
        f"gallery version {gallery.version}: {len(gallery.people)} people, "
        f"{len(gallery.template_owners)} templates -> {args.out}"
    )
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from dormguard.demo import run_demo

    try:
        return run_demo(args.duration)
    except RuntimeError as exc:
        print(f"dormguard demo: {exc}", file=sys.stderr)
        return 2


def _cmd_simulate_devices(args: argparse.Namespace) -> int:
    from contracts.settings import MqttSettings
    from edge.devices.simulation.cli import parse_fault_args, run_simulation

    try:
        faults = parse_fault_args(args.fault or [])
        settings = MqttSettings(host=args.host, port=args.port, protocol="3.1.1")
        return run_simulation(
            settings,
            args.rooms,
            speed=args.speed,
            duration_s=args.duration,
            faults=faults,
            credentials=Path(args.credentials) if args.credentials else None,
        )
    except ValueError as exc:
        print(f"dormguard simulate devices: {exc}", file=sys.stderr)
        return 2


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(prog="dormguard", description=__doc__)
    parser.add_argument("--log-level", default=os.environ.get("DORMGUARD_LOG_LEVEL", "info"))
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("validate-config", help="check a YAML config and point at bad lines")
    p.add_argument("file")
    p.add_argument("--kind", choices=CONFIG_KINDS, help="default: judged from the file")
    p.set_defaults(func=_cmd_validate_config)

    p = sub.add_parser("gate", help="run the entrance gate daemon")
    p.add_argument("--config", required=True)
    p.set_defaults(func=_cmd_gate)

    p = sub.add_parser("devices", help="run the service-room device bridge")
    p.add_argument("--config", required=True)
    p.set_defaults(func=_cmd_devices)

    simulate = sub.add_parser("simulate", help="simulators for demos and tests")
    ssub = simulate.add_subparsers(dest="simulate_command", required=True)
    p = ssub.add_parser(
        "devices", help="publish realistic appliance traces (Tasmota/ESPHome/Shelly)"
    )
    p.add_argument("--rooms", type=int, default=1)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=1883)
    p.add_argument(
        "--credentials",
        help="folder of <device id>.password files (deploy/mosquitto/issue-credentials.py "
        "clients/): each device logs in with its own account",
    )
    p.add_argument("--speed", type=float, default=60.0, help="simulated seconds per real second")
    p.add_argument("--duration", type=float, help="stop after this many real seconds")
    p.add_argument(
        "--fault", action="append", help="DEVICE_ID=leak|stuck|heater_failure|offline|overrun"
    )
    p.set_defaults(func=_cmd_simulate_devices)

    p = sub.add_parser("calibrate", help="measure match distances on your own photos")
    p.add_argument("photo_dir", help="one sub-folder of photos per person")
    p.add_argument("--target-fpir", type=float, default=0.001)
    p.add_argument("--json", action="store_true", help="print a JSON report")
    p.set_defaults(func=_cmd_calibrate)

    nir = sub.add_parser("nir", help="calibrate the near-infrared liveness camera")
    nsub = nir.add_subparsers(dest="nir_command", required=True)
    p = nsub.add_parser("record", help="save colour/NIR frame pairs from the gate's cameras")
    p.add_argument("--config", required=True, help="a gate config with liveness.nir")
    p.add_argument("--out", required=True, help="folder for NNNN-colour.png / NNNN-nir.png")
    p.add_argument("--frames", type=int, default=40)
    p.add_argument("--timeout", type=float, default=60.0, help="give up after this many s")
    p.set_defaults(func=_cmd_nir)
    p = nsub.add_parser("measure", help="the NIR cues on recorded live and attack pairs")
    p.add_argument("--config", required=True, help="a gate config with liveness.nir")
    p.add_argument("folder", help="with live/ and attack/ sub-folders of recorded pairs")
    p.set_defaults(func=_cmd_nir)

    p = sub.add_parser("demo", help="run the whole system on this machine with sample data")
    p.add_argument("--duration", type=float, help="run headless this long, then print counts")
    p.set_defaults(func=_cmd_demo)

    gallery = sub.add_parser("gallery", help="gallery key and offline gallery tools")
    gsub = gallery.add_subparsers(dest="gallery_command", required=True)
    p = gsub.add_parser("keygen", help="create a new AES-256 gallery key file")
    p.add_argument("--out", required=True)
    p.add_argument("--force", action="store_true")
    p.set_defaults(func=_cmd_gallery_keygen)
    p = gsub.add_parser("build", help="build an encrypted gallery from a people file and photos")
    p.add_argument("--people", required=True, help="YAML list of people")
    p.add_argument("--photos", help="folder with one sub-folder of photos per person id")
    p.add_argument("--key-file", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--version", type=int, default=1)
    p.set_defaults(func=_cmd_gallery_build)

    keys = sub.add_parser("keys", help="the gateway's command signing key (Ed25519)")
    ksub = keys.add_subparsers(dest="keys_command", required=True)
    p = ksub.add_parser("generate", help="create a signing key; prints the gates' trusted key")
    p.add_argument("--out", required=True)
    p.add_argument("--force", action="store_true")
    p.set_defaults(func=_cmd_keys_generate)
    p = ksub.add_parser("public", help="print the public key of a signing key file")
    p.add_argument("--key", required=True)
    p.set_defaults(func=_cmd_keys_public)

    from gateway.cli import add_commands

    add_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `dormguard` console script."""
    args = build_parser().parse_args(argv)
    _setup_logging(args.log_level)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
