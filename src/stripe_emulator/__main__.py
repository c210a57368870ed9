from stripe_emulator.cli import main

main()
