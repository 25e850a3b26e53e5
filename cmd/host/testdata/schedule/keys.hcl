# Six modules share the key "db" and must run one at a time; three share
# "ports"; one holds both keys. The free modules have no constraint, so the
# run has room to break the rule if the scheduler let it.
pipeline {
  name = "keys"
}

module "testkit.sleep" "db1" {
  duration        = "250ms"
  not_in_parallel = ["db"]
}

module "testkit.sleep" "db2" {
  duration        = "250ms"
  not_in_parallel = ["db"]
}

module "testkit.sleep" "db3" {
  duration        = "250ms"
  not_in_parallel = ["db"]
}

module "testkit.sleep" "db4" {
  duration        = "250ms"
  not_in_parallel = ["db"]
}

module "testkit.sleep" "db5" {
  duration        = "250ms"
  not_in_parallel = ["db"]
}

module "testkit.sleep" "db6" {
  duration        = "250ms"
  not_in_parallel = ["db"]
}

module "testkit.sleep" "both" {
  duration        = "250ms"
  not_in_parallel = ["db", "ports"]
}

module "testkit.sleep" "ports1" {
  duration        = "250ms"
  not_in_parallel = ["ports"]
}

module "testkit.sleep" "ports2" {
  duration        = "250ms"
  not_in_parallel = ["ports"]
}

module "testkit.sleep" "free1" {
  duration = "250ms"
}

module "testkit.sleep" "free2" {
  duration = "250ms"
}
