"""`python -m tutorial_lib COMMAND ...`: the curriculum's command line.

    grade PATH...      execute students' notebooks headless and report each exercise (a file or a class folder)
    progress [DIR]     per chapter, which exercises your notebooks pass (default chapters/; cached)
    prepare            check that this machine is ready for a class (packages, models, notebooks, kernel)
    build [--check]    write chapters/ from solutions/ (tutorial_lib.notebooks build)

Each command's module has a `main(argv) -> exit code`; `python -m tutorial_lib COMMAND --help` explains it.
"""

from __future__ import annotations

import importlib
import sys

# command -> (module, function, one-line help, arguments put before the user's). A command whose module
# is missing answers that it is unavailable.
COMMANDS: dict[str, tuple[str, str, str, tuple[str, ...]]] = {
    "grade": ("tutorial_lib.grading", "main", "grade notebooks headless: a file, or a folder of a class", ()),
    "progress": ("tutorial_lib.grading", "progress_main", "per chapter, which exercises your notebooks pass", ()),
    "prepare": ("tutorial_lib.prepare", "main", "check that this environment is ready for a class", ()),
    "build": ("tutorial_lib.notebooks", "main", "write chapters/ from solutions/ (--check: fail if stale)", ("build",)),
}


def usage() -> str:
    width = max(len(c) for c in COMMANDS)
    lines = ["usage: python -m tutorial_lib COMMAND [ARGS...]", "", "commands:"]
    lines += [f"  {name:<{width}}  {text}" for name, (_, _, text, _) in COMMANDS.items()]
    lines += ["", "`python -m tutorial_lib COMMAND --help` for a command's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    command, rest = argv[0], argv[1:]
    if command in ("-V", "--version"):
        from . import __version__

        print(__version__)
        return 0
    if command not in COMMANDS:
        print(f"unknown command {command!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module_name, function, _, prefix = COMMANDS[command]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name != module_name:
            raise
        print(
            f"`{command}` is not available in this version of tutorial_lib ({module_name} is missing).", file=sys.stderr
        )
        return 2
    result = getattr(module, function)([*prefix, *rest])
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
