from local.adyen.server import main

main()
