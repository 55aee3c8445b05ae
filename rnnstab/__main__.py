from rnnstab.cli import main

main()
