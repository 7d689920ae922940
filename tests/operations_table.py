"""README's table of Lambda's operations, rendered from botocore's model
and the server's table of what it does not do (gateway/api/unsupported.py).

    python tests/operations_table.py        # prints the table for README.md

tests/test_operations_table.py checks that README.md holds exactly this
table and that every operation answers as the table says.
"""

from __future__ import annotations

from lambdalet.gateway import lambda_model
from lambdalet.gateway.api import unsupported

START = "<!-- operations-table:start (tests/operations_table.py renders it) -->"
END = "<!-- operations-table:end -->"


def rows() -> list[tuple[str, str]]:
    out = []
    for name in sorted(lambda_model.operations()):
        reason = unsupported.REASONS.get(name)
        out.append((name, "yes" if reason is None else f"not supported by Lambdalet: {reason}"))
    return out


def render() -> str:
    supported = sum(1 for _, state in rows() if state == "yes")
    lines = [
        START,
        "",
        f"{len(rows())} operations in botocore's model, {supported} supported.",
        "",
        "| operation | supported |",
        "|---|---|",
    ]
    lines += [f"| {name} | {state} |" for name, state in rows()]
    lines += ["", END]
    return "\n".join(lines)


if __name__ == "__main__":
    print(render())
