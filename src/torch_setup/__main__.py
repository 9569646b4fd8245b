from torch_setup.cli import main

main()
