from bookings.cli import main

main()
