"""``facescope search NAME ...``: the architecture searches registered in :mod:`facescope.search`."""

from __future__ import annotations

import argparse

from facescope.errors import FacescopeError

NONE_REGISTERED = "no search is registered in this installation: `facescope search` has no subcommands yet."


def register(subparsers: argparse._SubParsersAction) -> None:
    from facescope.search import get_search, list_searches, searches_listing

    names = list_searches()
    listing = f"registered searches:\n{searches_listing()}" if names else NONE_REGISTERED
    parser = subparsers.add_parser(
        "search",
        help="architecture searches (see `facescope search --help` for those registered)",
        description="Run an architecture search; each search is a subcommand registered in facescope.search.",
        epilog=listing,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="search", metavar="SEARCH")
    for name in names:
        command = get_search(name)
        sub = commands.add_parser(name, help=command.summary, description=command.description or command.summary)
        if command.add_arguments is not None:
            command.add_arguments(sub)
        sub.set_defaults(func=lambda args, command=command: command.runner()(args))
    parser.set_defaults(func=_no_search_chosen)


def _no_search_chosen(args: argparse.Namespace) -> int:
    from facescope.search import list_searches

    names = list_searches()
    if not names:
        raise FacescopeError(NONE_REGISTERED)
    raise FacescopeError(f"choose a search: {', '.join(names)} (see `facescope search --help`)")
