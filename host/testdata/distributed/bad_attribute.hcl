# Loads (a worker's pre-join check passes) but fails the schema check once
# the plugins run: the master cannot start the run.
module "testkit.echo" "typo" {
  txet = "hello"
}
