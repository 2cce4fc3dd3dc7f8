"""``arspay doctor``: checks a deployment and says what is wrong and how to fix it.

Each check returns :class:`~.report.Finding` rows (ok, warn, fail or skip, a message and
a fix); none of them changes anything on the machine. ``fail`` makes the command exit 1.

* :mod:`.report` — the finding and its status, one line each;
* :mod:`.files` — key files and credentials readable by their owner only;
* :mod:`.schema` — the engine database at the newest migration, the vault's at its
  schema version;
* :mod:`.vault_socket` — a remote vault answers and gives this user the engine role;
* :mod:`.asterisk` — the deployed Asterisk config against ``arspay asterisk render``,
  ARI answering with the configured credentials;
* :mod:`.host` — the business time zone, the system clock (NTP), the SMS sender number;
* :mod:`.run` — every check in order, for the CLI (``ivr/cli/doctor_cmd.py``).

Nothing here prints a secret: drift is reported by file name, never by content.
"""
