pipeline {
  name       = "p"
  on_failure = "stpo"
  secrets    = "TOKEN"
  colour     = "red"
}

pipeline {
  name = "again"
}
