package auth

// UserNamed returns the user called name, for callers that know a user by a
// mapping rather than by a credential (Slack's slack_user): they must check
// the same permissions as a request with that user's token. An open
// authenticator answers Anonymous, as it does for every request.
func (a *Authenticator) UserNamed(name string) (User, bool) {
	if a.open {
		return a.anonymous(), true
	}
	for i, u := range a.users {
		if u.Name == name {
			return a.user(i), true
		}
	}
	return User{}, false
}
