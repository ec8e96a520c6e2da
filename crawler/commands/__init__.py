"""Project commands (``COMMANDS_MODULE``): a ``crawl`` with an exit status schedulers can use."""
