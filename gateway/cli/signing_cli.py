"""`lambdalet signing-profile create|ls|revoke`, `lambdalet sign` and
`lambdalet signing-config create|ls|rm`: code signing with keys of one's
own, where AWS has Signer.

A signing profile is a key pair. `create` makes one on this machine (the
private key stays here, in a 0600 file) and has the server trust its public
key, which answers with the profile version ARN to list in a code signing
config's AllowedPublishers. `sign` signs a .zip with it; the signed zip is
an ordinary zip, deployed as any other (functions/signatures.py says how the
signature travels). `signing-config create` makes the code signing config
that trusts named profiles, and `lambdalet deploy --code-signing-config`
puts a function under it:

    lambdalet signing-profile create alice
    lambdalet signing-config create --allow alice --enforce   # prints its ARN
    lambdalet sign ./app --profile alice                      # ./app.signed.zip
    lambdalet deploy ./app.signed.zip --name f --code-signing-config ARN
"""

from __future__ import annotations

import json
import os
import pathlib

_ALGORITHMS = {"ed25519": "Ed25519", "ecdsa-p384": "ECDSA-P384-SHA384"}


def _key_path(args) -> pathlib.Path:
    if args.key_file:
        return pathlib.Path(args.key_file)
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config")
    return pathlib.Path(base) / "lambdalet" / "signing-profiles" / f"{args.name}.pem"


def _meta_path(key: pathlib.Path) -> pathlib.Path:
    return key.with_suffix(".json")


def cmd_create(args) -> int:
    from ..functions import signatures
    from .async_cli import _request
    from .client import UserError

    key_path = _key_path(args)
    if key_path.exists():
        raise UserError(f"{key_path} already exists: remove it, or name another file with --key-file")
    key = signatures.generate(_ALGORITHMS[args.algorithm])
    profile = _request(
        args,
        "PUT",
        f"/_lambdalet/signing-profiles/{args.name}",
        {"PublicKey": signatures.public_pem(key), "SignatureValidityDays": args.validity_days},
    )
    key_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(signatures.private_pem(key))
    _meta_path(key_path).write_text(
        json.dumps({"ProfileVersionArn": profile["ProfileVersionArn"], "Algorithm": profile["Algorithm"]}) + "\n"
    )
    print(profile["ProfileVersionArn"])
    print(f"private key: {key_path}")
    return 0


def cmd_ls(args) -> int:
    from .async_cli import _request, _table

    profiles = _request(args, "GET", "/_lambdalet/signing-profiles")["Profiles"]
    if args.json:
        print(json.dumps(profiles, indent=2))
        return 0
    _table(("PROFILE VERSION ARN", "ALGORITHM", "STATUS"), [(p["ProfileVersionArn"], p["Algorithm"], p["Status"]) for p in profiles])
    return 0


def cmd_revoke(args) -> int:
    from .async_cli import _request

    for p in _request(args, "POST", f"/_lambdalet/signing-profiles/{args.name}/revoke", {})["Profiles"]:
        print(f"revoked {p['ProfileVersionArn']}")
    return 0


def cmd_sign(args) -> int:
    from ..functions import signatures
    from .client import UserError
    from .packaging import zip_directory

    args.name = args.profile
    key_path = _key_path(args)
    try:
        key = signatures.load_private(key_path.read_bytes())
        arn = json.loads(_meta_path(key_path).read_text())["ProfileVersionArn"]
    except FileNotFoundError as exc:
        raise UserError(
            f"no signing profile {args.profile} on this machine ({exc.filename}): create it with `lambdalet signing-profile create {args.profile}`"
        ) from None
    source = pathlib.Path(args.zip)
    try:
        package = zip_directory(source) if source.is_dir() else source.read_bytes()
        signed = signatures.sign(package, key, arn)
    except (OSError, signatures.SignatureError) as exc:
        raise UserError(f"cannot sign {source}: {exc}") from None
    name = source.resolve().name if source.is_dir() else source.stem
    out = pathlib.Path(args.output) if args.output else source.resolve().with_name(name + ".signed.zip")
    out.write_bytes(signed)
    print(out)
    return 0


def cmd_config_create(args) -> int:
    from .async_cli import _request
    from .client import UserError, call
    from .client import client as make_client

    profiles = _request(args, "GET", "/_lambdalet/signing-profiles")["Profiles"]
    allowed = []
    for wanted in args.allow:
        # A profile by name: each of its versions still trusted; an ARN as given.
        found = [p["ProfileVersionArn"] for p in profiles if p["ProfileName"] == wanted and p["Status"] == "Active"]
        if not found and not wanted.startswith("arn:"):
            raise UserError(f"no active signing profile {wanted} on the server: create it with `lambdalet signing-profile create {wanted}`")
        allowed += found or [wanted]
    made = call(
        make_client(args).create_code_signing_config,
        Description=args.description or "",
        AllowedPublishers={"SigningProfileVersionArns": allowed},
        CodeSigningPolicies={"UntrustedArtifactOnDeployment": "Enforce" if args.enforce else "Warn"},
    )
    print(made["CodeSigningConfig"]["CodeSigningConfigArn"])
    return 0


def cmd_config_ls(args) -> int:
    from .async_cli import _table
    from .client import call
    from .client import client as make_client

    client = make_client(args)
    configs = [
        c for page in call(lambda: list(client.get_paginator("list_code_signing_configs").paginate())) for c in page["CodeSigningConfigs"]
    ]
    if args.json:
        print(json.dumps(configs, indent=2))
        return 0
    _table(
        ("CODE SIGNING CONFIG ARN", "POLICY", "ALLOWED PUBLISHERS", "DESCRIPTION"),
        [
            (
                c["CodeSigningConfigArn"],
                c["CodeSigningPolicies"]["UntrustedArtifactOnDeployment"],
                " ".join(c["AllowedPublishers"]["SigningProfileVersionArns"]),
                c.get("Description", ""),
            )
            for c in configs
        ],
    )
    return 0


def cmd_config_rm(args) -> int:
    from .client import call
    from .client import client as make_client

    call(make_client(args).delete_code_signing_config, CodeSigningConfigArn=args.arn)
    print(f"deleted {args.arn}")
    return 0


def add_parsers(sub, parents: list | None = None) -> None:
    p = sub.add_parser("signing-profile", help="key pairs whose signatures code signing configs can trust: create, ls, revoke")
    profiles = p.add_subparsers(dest="profile_command", required=True, metavar="ACTION")
    q = profiles.add_parser(
        "create",
        help="make a key pair here and have the server trust its public key; prints the profile version ARN",
        parents=parents or [],
    )
    q.add_argument("name", help="profile name ([a-zA-Z0-9_]{2,64}, as AWS Signer's)")
    q.add_argument("--algorithm", choices=sorted(_ALGORITHMS), default="ed25519", help="the key's algorithm (default: ed25519)")
    q.add_argument("--key-file", help="where the private key goes (default: ~/.config/lambdalet/signing-profiles/NAME.pem, 0600)")
    q.add_argument(
        "--validity-days",
        type=int,
        default=4110,
        metavar="DAYS",
        help="how long its signatures stay valid (default and most: 4110 days, AWS Signer's 135 months); an older one fails the expiry check",
    )
    q.set_defaults(func=cmd_create)
    q = profiles.add_parser("ls", help="the profiles the server trusts", parents=parents or [])
    q.add_argument("--json", action="store_true", help="print JSON")
    q.set_defaults(func=cmd_ls)
    q = profiles.add_parser("revoke", help="stop trusting a profile (every version) or one version (by its ARN)", parents=parents or [])
    q.add_argument("name", help="profile name or profile version ARN")
    q.set_defaults(func=cmd_revoke)

    p = sub.add_parser("signing-config", help="code signing configs: which signing profiles a function accepts (create, ls, rm)")
    configs = p.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    q = configs.add_parser(
        "create", help="a config trusting the named profiles; prints its ARN for `deploy --code-signing-config`", parents=parents or []
    )
    q.add_argument(
        "--allow",
        action="append",
        required=True,
        metavar="PROFILE",
        help="a signing profile (name, or profile version ARN) whose signatures pass; repeat for more",
    )
    q.add_argument(
        "--enforce",
        action="store_true",
        help="refuse untrusted code (CodeVerificationFailedException); without it, untrusted code is deployed with a warning (Warn)",
    )
    q.add_argument("--description", help="the config's description")
    q.set_defaults(func=cmd_config_create)
    q = configs.add_parser("ls", help="the code signing configs", parents=parents or [])
    q.add_argument("--json", action="store_true", help="print JSON")
    q.set_defaults(func=cmd_config_ls)
    q = configs.add_parser("rm", help="delete a config (no function may still follow it)", parents=parents or [])
    q.add_argument("arn", metavar="ARN", help="the config's ARN")
    q.set_defaults(func=cmd_config_rm)

    p = sub.add_parser("sign", help="sign a .zip (or a directory, zipped for you) with a signing profile's key")
    p.add_argument("zip", metavar="ZIP|DIR", help="the package")
    p.add_argument("--profile", required=True, help="the signing profile's name")
    p.add_argument("--key-file", help="its private key (default: ~/.config/lambdalet/signing-profiles/PROFILE.pem)")
    p.add_argument("-o", "--output", help="the signed package (default: ZIP's name with .signed.zip)")
    p.set_defaults(func=cmd_sign)
