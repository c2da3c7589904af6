"""Print `skipfold serve`'s settings table, the one docs/serve.md holds between its markers:
python scripts/settings_table.py (tests/service/test_options.py checks the docs' copy)."""

from skipfold.common.model_flags import settings_table
from skipfold.service.options import ENV_PREFIX, ServeOptions

if __name__ == "__main__":
    print(settings_table(ServeOptions, ENV_PREFIX), end="")
