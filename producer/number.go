package producer

// ParseNumber normalises number exactly as a message's `to` is normalised
// (libphonenumber, region for numbers written without a country code, e.g.
// "AU") and returns it in E.164 (+61400000042), or a *FieldError naming
// field. The callbacks receiver uses it for a reply's ReplyFrom, so that
// an opt-out lands on the number later sends go to.
func ParseNumber(field, number, region string) (string, error) {
	n, ferr := normalizeNumber(field, number, region)
	if ferr != nil {
		return "", ferr
	}
	return n, nil
}
