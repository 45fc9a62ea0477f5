from jaxhp.cli import console_main

console_main()
