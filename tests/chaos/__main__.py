from tests.chaos.campaign import main

main(prog_name="python -m tests.chaos")
