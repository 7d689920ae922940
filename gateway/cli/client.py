"""What every client subcommand shares: the server's address and keys, a
botocore client that reads no AWS configuration, and the user errors that
main() prints as one line (a refused signature with a hint of why)."""

from __future__ import annotations

import os
import pathlib

from ..app.config import DEFAULT_PORT, DEFAULT_REGION, default_data_dir


class UserError(Exception):
    """A mistake the user can fix; printed as one line."""


class SignatureRefused(UserError):
    """The server did not accept the request's signature; main() adds what
    the CLI signed with and how to fix it."""

    def __init__(self, message: str, *, clock: bool = False) -> None:
        super().__init__(message)
        self.clock = clock


# The errors a SigV4 verifier answers with (403), AWS's names for them.
SIGNATURE_ERRORS = frozenset(
    {
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "IncompleteSignatureException",
        "MissingAuthenticationTokenException",
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
    }
)


def http_error(code: str, message: str) -> UserError:
    """The UserError for a refused request, told apart when it is the signature."""
    if code in SIGNATURE_ERRORS:
        return SignatureRefused(f"{code}: {message}", clock="Signature expired" in message or "not yet current" in message)
    return UserError(f"{code}: {message}")


def endpoint(args) -> str:
    return getattr(args, "endpoint", None) or os.environ.get("LAMBDALET_ENDPOINT") or f"http://127.0.0.1:{DEFAULT_PORT}"


def data_dir(args) -> pathlib.Path:
    given = getattr(args, "data_dir", None)
    return pathlib.Path(given) if given else default_data_dir()


def credentials_with_source(args) -> tuple[str, str, str]:
    """(access key, secret, where they came from). The server's own keys,
    from <data-dir>/credentials, unless $LAMBDALET_ACCESS_KEY_ID and
    $LAMBDALET_SECRET_ACCESS_KEY say otherwise. AWS_ACCESS_KEY_ID,
    AWS_PROFILE and the rest are for AWS and are not used: keys for AWS
    mean nothing to this server."""
    import configparser

    key = os.environ.get("LAMBDALET_ACCESS_KEY_ID")
    secret = os.environ.get("LAMBDALET_SECRET_ACCESS_KEY")
    if key and secret:
        return key, secret, "$LAMBDALET_ACCESS_KEY_ID"
    creds_file = data_dir(args) / "credentials"
    if not creds_file.exists():
        raise UserError(
            f"no credentials: {creds_file} does not exist (start `lambdalet serve` first, pass --data-dir, "
            "or set LAMBDALET_ACCESS_KEY_ID and LAMBDALET_SECRET_ACCESS_KEY)"
        )
    parser = configparser.ConfigParser()
    try:
        parser.read(creds_file)
        return parser["default"]["aws_access_key_id"], parser["default"]["aws_secret_access_key"], str(creds_file)
    except (KeyError, configparser.Error, PermissionError) as exc:
        raise UserError(f"cannot read credentials from {creds_file}: {exc}") from None


def credentials(args) -> tuple[str, str]:
    key, secret, _source = credentials_with_source(args)
    return key, secret


def refusal_hint(args, exc: SignatureRefused) -> str:
    if exc.clock:
        return "  this machine's clock and the server's differ by more than 5 minutes; set the clocks right"
    try:
        key, _secret, source = credentials_with_source(args)
    except UserError:
        return ""
    return (
        f"  the server at {endpoint(args)} does not know the key lambdalet signed with ({key}, from {source}).\n"
        "  Point --data-dir (or $LAMBDALET_DATA_DIR) at the data dir that server printed when it started, or set\n"
        "  LAMBDALET_ACCESS_KEY_ID and LAMBDALET_SECRET_ACCESS_KEY to its keys. (AWS_ACCESS_KEY_ID, AWS_PROFILE\n"
        "  and other AWS settings are not used by lambdalet.)"
    )


def client(args):
    import botocore.config
    import botocore.session

    key, secret = credentials(args)
    # A session of our own that reads no AWS config or credentials files and
    # no AWS_PROFILE: a profile the user has for AWS (or lacks) must not
    # stop a command aimed at this server.
    session = botocore.session.Session(session_vars={"profile": (None, None, None, None)})
    session.set_config_variable("config_file", os.devnull)
    session.set_config_variable("credentials_file", os.devnull)
    return session.create_client(
        "lambda",
        endpoint_url=endpoint(args),
        region_name=os.environ.get("AWS_REGION", DEFAULT_REGION),
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        config=botocore.config.Config(retries={"max_attempts": 1}, read_timeout=960, connect_timeout=5),
    )


def call(fn, **kwargs):
    import botocore.exceptions

    try:
        return fn(**kwargs)
    except botocore.exceptions.ClientError as exc:
        err = exc.response.get("Error", {})
        raise http_error(err.get("Code", "Error"), err.get("Message", str(exc))) from None
    except botocore.exceptions.EndpointConnectionError as exc:
        raise UserError(f"cannot reach the server: {exc}") from None
    except botocore.exceptions.BotoCoreError as exc:
        raise UserError(str(exc)) from None
