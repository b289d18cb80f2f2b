"""The desktop bundle's entry point: the `anyi2v` command, studio by default.

Run with no arguments (a double-click), it opens the studio; with arguments it is the `anyi2v` command
(`anyi2v-studio daemon ...` is how the studio starts its embedded daemon from a full bundle).
"""

import multiprocessing
import sys

if __name__ == "__main__":
    multiprocessing.freeze_support()  # the renderer's loader processes start through this executable
    from anyi2v.cli import main

    sys.exit(main(sys.argv[1:] or ["studio"]))
