import sys

try:
    from bench.cli import main
except KeyboardInterrupt:  # Ctrl-C while the harness (torch) is still being imported
    print("interrupted", file=sys.stderr)
    sys.exit(130)

sys.exit(main())
