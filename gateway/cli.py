"""Gateway subcommands of `dormguard`: gateway, user create, student-account, audit verify."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from contracts.models import utc_now
from contracts.yamlconfig import ConfigError, load_yaml_model
from gateway.config import GatewayConfig

if TYPE_CHECKING:
    from sqlalchemy import Engine


def _load(path: str) -> GatewayConfig | None:
    try:
        return load_yaml_model(Path(path), GatewayConfig)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return None


def _with_config(
    args: argparse.Namespace,
    command: str,
    run: Callable[[GatewayConfig], int],
    errors: tuple[type[Exception], ...],
) -> int:
    """Load ``--config`` and run the command with it; 2, with the reason on stderr, when the
    configuration is invalid or the command raises one of ``errors``."""
    config = _load(args.config)
    if config is None:
        return 2
    try:
        return run(config)
    except errors as exc:
        print(f"dormguard {command}: {exc}", file=sys.stderr)
        return 2


def _engine(config: GatewayConfig) -> Engine:
    """The configured database, its password (if any) read from the environment."""
    from gateway.db import open_engine

    env = dict(os.environ)
    db_password = config.database.password.read(env) if config.database.password else None
    return open_engine(config.database.url, password=db_password)


def _cmd_gateway(args: argparse.Namespace) -> int:
    from gateway.app import run_gateway

    return _with_config(args, "gateway", run_gateway, (ValueError, RuntimeError, OSError))


def _read_password(args: argparse.Namespace) -> str:
    if args.password_file:
        return Path(args.password_file).read_text(encoding="utf-8").strip()
    if os.environ.get("DORMGUARD_PASSWORD"):
        return os.environ["DORMGUARD_PASSWORD"]
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise ValueError("the two passwords differ")
    return first


def _cmd_user_create(args: argparse.Namespace) -> int:
    from gateway.auth.users import create_user
    from gateway.db import migrate, session_factory

    def create(config: GatewayConfig) -> int:
        password = _read_password(args)
        engine = _engine(config)
        migrate(engine)
        with session_factory(engine).begin() as session:
            create_user(
                session,
                args.username,
                password,
                args.role,
                display_name=args.name or "",
                mode=config.mode,
            )
        return 0

    status = _with_config(args, "user create", create, (ValueError, OSError))
    if status == 0:
        print(f"user {args.username!r} created with role {args.role}")
    return status


def _cmd_student_account(args: argparse.Namespace) -> int:
    from gateway.db import migrate, session_factory
    from gateway.db.schema import Person
    from gateway.students.accounts import issue_student_account

    issued = []

    def issue(config: GatewayConfig) -> int:
        engine = _engine(config)
        migrate(engine)
        with session_factory(engine).begin() as session:
            person = session.get(Person, args.person_id)
            if person is None:
                raise ValueError(f"no person {args.person_id!r}: add them first (POST /api/people)")
            issued.append(issue_student_account(session, person, mode=config.mode, now=utc_now()))
        return 0

    status = _with_config(args, "student-account", issue, (ValueError, OSError))
    if status == 0:
        account = issued[0]
        what = "created" if account.created else "given a new code (the old one no longer works)"
        print(f"student account {account.username!r} {what}")
        print(f"sign-in code (shown once): {account.code}")
    return status


def _cmd_audit_verify(args: argparse.Namespace) -> int:
    from gateway.audit import verify_chain, verify_report_chain

    config = _load(args.config)
    if config is None:
        return 2
    engine = _engine(config)
    report = verify_chain(engine)
    if not report.ok:
        print(
            f"ACCESS LOG TAMPERED: record id {report.first_bad_id}: {report.problem} "
            f"({report.rows} records checked)",
            file=sys.stderr,
        )
        return 1
    print(f"access log intact: {report.rows} records, hash chain verified")
    reports = verify_report_chain(engine)
    if not reports.ok:
        print(
            f"WRONG-MATCH REPORTS TAMPERED: report id {reports.first_bad_id}: {reports.problem} "
            f"({reports.rows} reports checked)",
            file=sys.stderr,
        )
        return 1
    print(f"wrong-match reports intact: {reports.rows} reports, hash chain verified")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register the gateway subcommands on the `dormguard` parser."""
    p = sub.add_parser("gateway", help="run the gateway: MQTT ingest, alerts, API")
    p.add_argument("--config", required=True)
    p.set_defaults(func=_cmd_gateway)

    user = sub.add_parser("user", help="gateway users")
    usub = user.add_subparsers(dest="user_command", required=True)
    p = usub.add_parser("create", help="create a user (use it for the first admin)")
    p.add_argument("--config", required=True)
    p.add_argument("--username", required=True)
    p.add_argument(
        "--role", required=True, choices=["admin", "guard", "facilities", "counsellor", "auditor"]
    )
    p.add_argument("--name", help="display name")
    p.add_argument(
        "--password-file", help="file holding the password (else $DORMGUARD_PASSWORD or prompt)"
    )
    p.set_defaults(func=_cmd_user_create)

    p = sub.add_parser(
        "student-account",
        help="give a student the one-time sign-in code of their student page (prints it once)",
    )
    p.add_argument("--config", required=True)
    p.add_argument("person_id", help="the student's id (also their username)")
    p.set_defaults(func=_cmd_student_account)

    audit = sub.add_parser("audit", help="access-log integrity")
    asub = audit.add_subparsers(dest="audit_command", required=True)
    p = asub.add_parser("verify", help="check the access log's hash chain")
    p.add_argument("--config", required=True)
    p.set_defaults(func=_cmd_audit_verify)
