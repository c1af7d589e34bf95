import os

os.environ.setdefault("BLINDPROOF_THREADS", "1")

import blindproof  # noqa: E402,F401  (pins thread pools before numpy/torch start them)
