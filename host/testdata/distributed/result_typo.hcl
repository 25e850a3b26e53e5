# A reference to a field the result does not have: the master refuses
# the file before it enqueues anything.
module "testkit" "e" {
  text = "hi"
}

module "shell" "use" {
  command = ["echo", module.e.value.modul]
}
