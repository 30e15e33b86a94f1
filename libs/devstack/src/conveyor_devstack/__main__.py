"""`python -m conveyor_devstack` is `python -m conveyor_devstack.dev`."""

from conveyor_devstack.dev import main

if __name__ == "__main__":
    main()
