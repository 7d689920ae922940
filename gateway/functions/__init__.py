"""The control plane's domain: functions and what belongs to them, no HTTP.

- model.py              FunctionRecord, a function as Lambdalet stores it,
                        and its Lambda wire shape.
- constraints.py        the checks that model declares (patterns, lengths,
                        ranges, enums, required members), worded as AWS's
                        ValidationException words them.
- validation.py         the semantic checks on a function's configuration,
                        in AWS's words (InvalidParameterValueException).
- unsupported_settings.py  the settings this server cannot honour (VPC,
                        EFS, capacity providers, durable functions, ...),
                        refused with the reason rather than dropped.
- runtimes.py           which Lambda runtimes this server runs, and on which
                        interpreter.
- directory.py          FunctionDirectory: the registry the invoke path reads,
                        and how a FunctionName (an ARN, a qualifier, an
                        alias and its weights) resolves to a record.
- service.py            FunctionService, a FunctionDirectory that creates,
                        updates and deletes functions (made durable by
                        storage and the code store before it answers).
- function_input.py     what CreateFunction and UpdateFunction* are given,
                        checked and turned into record fields; the account's
                        code-size limits; ListFunctions' pages. Pure.
- versions.py           published versions, aliases, provisioned concurrency.
- function_settings.py  function URL configs and reserved concurrency.
- function_configs.py   recursion and runtime management configs.
- layers.py             layer versions, their policies, and a function's
                        Layers; layer_input.py checks the values given
                        (pure), layer_policy.py makes the policy's
                        statements (pure), layer_records.py holds the records.
- policy.py             resource-based policy statements in AWS's JSON (pure);
                        permissions.py: AddPermission, RemovePermission,
                        GetPolicy.
- code_signing.py       signing profiles, code signing configs and the check
                        every upload passes; signatures.py signs and checks
                        a zip (pure).
- codestore.py          deployment packages, validated and stored by sha256.
- zip_check.py          what a deployment package must be (names, links, sizes,
                        methods), checked before a byte is written. Pure.
- zip_extract.py        writing a checked zip into a fresh tree, counting real bytes.
- packaging.py          a directory or a .zip file as the .zip Lambda takes
                        (`lambdalet deploy`, Lambdalet.deploy).
- code_gc.py            removing code nothing needs any more, and the holds
                        that keep code a call or an instance still uses.
- storage.py            durable state behind a Protocol (SQLite, WAL).
- disk_reserve.py       room held back on the data disk so that deletes
                        (which free room) work on a full disk.
"""

from .directory import pick_version
from .function_input import ACCOUNT_LIMITS, ZIP_MAX
from .service import FunctionService

__all__ = ["ACCOUNT_LIMITS", "ZIP_MAX", "FunctionService", "pick_version"]
