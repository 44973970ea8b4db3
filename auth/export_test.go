package auth

import "time"

// SetSleep makes sleep what d waits with on another gateway's claim.
func SetSleep(d *Directory, sleep func(time.Duration)) { d.sleep = sleep }
