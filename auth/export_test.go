package auth

import "time"

// SetClock makes now the Directory's clock: the times it writes, the
// expiry of claims, and when refresh looks at the store again.
func (d *Directory) SetClock(now func() time.Time) { d.now = now }
