# hang ignores cancellation: only killing its plugin stops it.
pipeline {
  name = "hang"
}

module "testkit.hang" "stuck" {
  message = "forever"
}
