"""`lambdalet url create|get|rm`: a function's URL, made public the way the
AWS console makes it.

A URL with AuthType NONE answers 403 until the function's resource policy
lets everyone call it; since October 2025 AWS wants two statements for that
(lambda:InvokeFunctionUrl and lambda:InvokeFunction), and the console adds
both when it creates such a URL. `url create` does the same, with the
console's statement ids, and `url rm` removes them with the URL.
"""

from __future__ import annotations

from ..functions.policy import PUBLIC_URL_STATEMENTS as PUBLIC_STATEMENTS


def _qualified(args) -> dict:
    return {"Qualifier": args.qualifier} if args.qualifier else {}


def cmd_create(args) -> int:
    user_error, make_client, call = args.cli_helpers
    client = make_client(args)
    kwargs = {"FunctionName": args.name, "AuthType": args.auth_type, **_qualified(args)}
    if args.cors_origin:
        kwargs["Cors"] = {"AllowOrigins": args.cors_origin}
    made = call(client.create_function_url_config, **kwargs)
    if args.auth_type == "NONE":
        policy = _policy(client, args)
        for statement in PUBLIC_STATEMENTS:
            if statement["StatementId"] not in policy:
                call(client.add_permission, FunctionName=args.name, **statement, **_qualified(args))
    print(made["FunctionUrl"])
    return 0


def cmd_get(args) -> int:
    _user_error, make_client, call = args.cli_helpers
    got = call(make_client(args).get_function_url_config, FunctionName=args.name, **_qualified(args))
    print(f"{got['FunctionUrl']}\t{got['AuthType']}")
    return 0


def cmd_rm(args) -> int:
    _user_error, make_client, call = args.cli_helpers
    client = make_client(args)
    call(client.delete_function_url_config, FunctionName=args.name, **_qualified(args))
    policy = _policy(client, args)
    for statement in PUBLIC_STATEMENTS:
        if statement["StatementId"] in policy:
            call(client.remove_permission, FunctionName=args.name, StatementId=statement["StatementId"], **_qualified(args))
    return 0


def _policy(client, args) -> set[str]:
    """The statement ids of the function's (or alias's) policy."""
    import json

    try:
        doc = client.get_policy(FunctionName=args.name, **_qualified(args))
    except client.exceptions.ResourceNotFoundException:
        return set()
    return {s["Sid"] for s in json.loads(doc["Policy"])["Statement"]}


def add_parsers(sub, user_error: type[Exception], make_client, call, parents: list | None = None) -> None:
    helpers = (user_error, make_client, call)
    p = sub.add_parser("url", help="a function's URL: create (public by default, as the AWS console makes it), get, rm")
    urls = p.add_subparsers(dest="url_command", required=True, metavar="ACTION")
    q = urls.add_parser("create", help="give a function (or an alias) a URL and print it", parents=parents or [])
    q.add_argument("name", help="function name")
    q.add_argument("--qualifier", help="an alias of the function (default: the function itself)")
    q.add_argument(
        "--auth-type",
        choices=("NONE", "AWS_IAM"),
        default="NONE",
        help="NONE: anyone may call it (the policy statements that allow it are added); AWS_IAM: SigV4-signed calls only",
    )
    q.add_argument("--cors-origin", action="append", metavar="ORIGIN", help="an origin browsers may call it from; repeatable")
    q.set_defaults(func=cmd_create, cli_helpers=helpers)
    q = urls.add_parser("get", help="print a function's URL and its auth type", parents=parents or [])
    q.add_argument("name", help="function name")
    q.add_argument("--qualifier", help="an alias of the function")
    q.set_defaults(func=cmd_get, cli_helpers=helpers)
    q = urls.add_parser("rm", help="delete a function's URL and the statements `url create` added", parents=parents or [])
    q.add_argument("name", help="function name")
    q.add_argument("--qualifier", help="an alias of the function")
    q.set_defaults(func=cmd_rm, cli_helpers=helpers)
