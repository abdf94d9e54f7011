mod hash_cli;
