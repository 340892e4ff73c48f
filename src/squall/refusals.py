"""Why a PostgreSQL or Redis server named by a URL could not be used, and the fix.

A server that does not answer is to be started; one that answers and refuses (a
password it needs or rejects, a user or database it does not know) is running, and
the fix is in the URL (or the password file a rejected password came from). Messages name
the user and where a password goes, never the password. ``squall run`` (its services)
and the reference platform (its check before the workers start) word the same failures
alike, each naming its own variable.
"""

from __future__ import annotations

import getpass
import os

import asyncpg
import redis

from squall.pgpass import home_directory, password_file
from squall.urls import credentials, redact, with_credentials


def reason(exc: BaseException) -> str:
    """``exc``'s message as a clause for a sentence the caller ends: without its own final
    period (redis-py ends its connection errors with one), or its type when it has none."""
    return (str(exc) or type(exc).__name__).rstrip(".")


def option_refused(server: str, url: str, exc: BaseException) -> str:
    """``'URL' has an option the <server> client refuses: <why>``: a URL whose options the
    client library rejects before connecting (``?sslmode=bogus``, ``?socket_timeout=abc``),
    a setting to fix rather than a server to start; the caller names the setting."""
    return f"{redact(url)!r} has an option the {server} client refuses: {reason(exc)}"


def postgres_user(url: str) -> str:
    """The user asyncpg connects as for ``url``: the URL's, else ``PGUSER``, else this
    process's account."""
    return credentials(url)[0] or os.environ.get("PGUSER") or getpass.getuser()


def unreadable_client_file(url: str, exc: BaseException) -> str | None:
    """The message for the PostgreSQL client failing, on its way to ``url``, on a file of
    this user's it may not read (asyncpg looks for client certificates in ``~/.postgresql``
    and stops at one it cannot stat: HOME naming another user's folder, as with ``docker run
    --user``); None for any other error."""
    if not isinstance(exc, PermissionError) or exc.filename is None:
        return None
    return (
        f"cannot connect to PostgreSQL at {redact(url)}: the PostgreSQL client could not read "
        f"{exc.filename} ({exc.strerror}): it looks for client certificates under "
        f"~/.postgresql, and HOME is {os.environ.get('HOME', '')!r}. Point HOME at a folder "
        "this user may read (or make that one readable)."
    )


def postgres_refusal(url: str, exc: BaseException, variable: str, otherwise: str) -> str | None:
    """The message for PostgreSQL at ``url`` (given by ``variable``) refusing a connection
    with ``exc``, ending with ``otherwise`` (the other way out, as a final clause); None
    when the server did not answer at all. A rejected password neither the URL nor
    ``PGPASSWORD`` gave came from the password file (:func:`squall.pgpass.password_file`),
    named by its path, when a line of it matches."""
    server = f"PostgreSQL at {redact(url)}"
    unreadable = unreadable_client_file(url, exc)
    if unreadable is not None:
        return unreadable
    if isinstance(exc, asyncpg.InvalidPasswordError):
        user = postgres_user(url)
        where = f"in {variable} ({with_credentials(url, user)}) or PGPASSWORD, {otherwise}"
        if credentials(url)[1] or os.environ.get("PGPASSWORD"):
            return f"{server} rejected the password of user {user!r}. Fix it {where}"
        passfile = password_file(url, os.environ, home_directory())
        if passfile is not None:
            return (
                f"{server} rejected the password of user {user!r} from the password file "
                f"{passfile}. Fix it there, or put the right one {where}"
            )
        return (
            f"{server} needs a password for user {user!r}, and neither {variable} nor "
            f"PGPASSWORD gives one: put it {where}"
        )
    if isinstance(exc, asyncpg.InvalidAuthorizationSpecificationError):
        return (
            f"{server} refuses user {postgres_user(url)!r}: {reason(exc)}. Name a user it "
            f"accepts in {variable}, {otherwise}"
        )
    if isinstance(exc, asyncpg.PostgresError):
        return f"{server} refuses the connection: {reason(exc)}. Fix {variable}, {otherwise}"
    return None


def redis_refusal(url: str, exc: BaseException, variable: str, otherwise: str) -> str | None:
    """The message for Redis at ``url`` (given by ``variable``) refusing a connection with
    ``exc``, ending with ``otherwise``; None when the server did not answer at all."""
    server = f"Redis at {redact(url)}"
    auth = (redis.AuthenticationError, redis.AuthenticationWrongNumberOfArgsError)
    if isinstance(exc, auth) or (
        isinstance(exc, redis.ResponseError) and str(exc).startswith("NOAUTH")
    ):
        user, password = credentials(url)
        form = with_credentials(url, user or "")
        if not password:
            acl = "" if user else ", or USER:PASSWORD@ for a user of its ACL"
            return (
                f"{server} needs a password, and {variable} gives none: put it in {variable} "
                f"({form}{acl}), {otherwise}"
            )
        return (
            f"{server} rejected the credentials in {variable} (user {user or 'default'!r}: "
            f"{reason(exc)}). Fix the password (or user) in {variable} ({form}), {otherwise}"
        )
    if isinstance(exc, redis.ResponseError):
        return f"{server} refuses the connection: {reason(exc)}. Fix {variable}, {otherwise}"
    return None
