"""Drop the test databases of a finished pytest session, detached from it.

    python tests/pg_cleanup.py DSN NAME...

``DROP DATABASE`` waits for a PostgreSQL checkpoint (about half a second each here): done
in the session's teardown, a full run's hundreds of databases added minutes to the
suite's wall time for no test's benefit, so ``tests/conftest.py`` starts this script in
its own process group and returns. It drops the NAMEs given, then any ``arspay_t_<pid>_*``
database whose pytest process is gone (a killed run's leftovers). Standalone on purpose:
it imports nothing from the project."""

from __future__ import annotations

import asyncio
import os
import re
import sys

import asyncpg

OWNED = re.compile(r"^arspay_t_(\d+)_[0-9a-f]+(_\w+)?$")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


async def main(dsn: str, names: list[str]) -> None:
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        rows = await conn.fetch("SELECT datname FROM pg_database WHERE datname LIKE 'arspay_t_%'")
        orphans = [
            r["datname"]
            for r in rows
            if (m := OWNED.match(r["datname"])) and not alive(int(m.group(1)))
        ]
        for name in dict.fromkeys([*names, *orphans]):  # templates last: they are named last
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2:]))
