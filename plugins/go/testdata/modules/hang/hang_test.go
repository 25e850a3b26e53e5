// Package hang is a fixture whose test never ends on its own: the go
// plugin's cancellation test kills it.
package hang

import (
	"fmt"
	"os"
	"testing"
	"time"
)

func TestHang(t *testing.T) {
	fmt.Printf("test binary pid %d\n", os.Getpid())
	time.Sleep(time.Hour)
}
