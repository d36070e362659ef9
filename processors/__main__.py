"""`python -m processors worker`: the Faust worker running every processor agent."""

from processors.app import main

main()
