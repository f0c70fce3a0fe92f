package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/ferry-io/ferry/auth"
	"github.com/ferry-io/ferry/internal/perm"
	"github.com/golang-jwt/jwt/v5"
)

// listFlag collects a flag given several times.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// token mints a signed token, for tests and for devices that get theirs
// from an operator.
func token(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("ferry token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	secretFile := fs.String("secret-file", "", "file of HMAC secrets (the first line signs); or set FERRY_JWT_SECRET")
	sub := fs.String("sub", "", "the identity (the token's sub), required")
	ttl := fs.Duration("ttl", time.Hour, "how long the token is valid")
	aud := fs.String("aud", "", "the token's aud")
	iss := fs.String("iss", "", "the token's iss")
	var pub, allowSub, denyPub, denySub, claims listFlag
	fs.Var(&pub, "pub", "a filter the token may publish to ({sub} and {claim:NAME} templates); repeat for more")
	fs.Var(&allowSub, "subscribe", "a filter the token may subscribe to; repeat for more")
	fs.Var(&denyPub, "deny-pub", "a filter the token may not publish to; repeat for more")
	fs.Var(&denySub, "deny-subscribe", "a filter the token may not subscribe to; repeat for more")
	fs.Var(&claims, "claim", "another string claim, NAME=VALUE (for {claim:NAME}); repeat for more")
	fs.Usage = func() {
		fmt.Fprint(stderr, "Usage: ferry token --secret-file FILE --sub ID [flags]\n\nPrints a signed JWT (HS256) for ferry serve --jwt-secret-file. Without --pub or --subscribe the\ntoken carries no permissions and gets what the broker's ACL grants its identity.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	fail := func(err error) int { fmt.Fprintln(stderr, "ferry token:", err); return 2 }
	if fs.NArg() > 0 {
		return fail(fmt.Errorf("unexpected argument %q", fs.Arg(0)))
	}
	if *sub == "" {
		return fail(errors.New("--sub: the identity is required"))
	}
	if *ttl <= 0 {
		return fail(fmt.Errorf("--ttl %v: must be positive", *ttl))
	}
	var secrets [][]byte
	var err error
	switch env := os.Getenv("FERRY_JWT_SECRET"); {
	case *secretFile != "":
		if secrets, err = auth.LoadSecrets(*secretFile); err != nil {
			return fail(fmt.Errorf("--secret-file: %w", err))
		}
	case env != "":
		if secrets, err = auth.ParseSecrets(env, "FERRY_JWT_SECRET"); err != nil {
			return fail(err)
		}
	default:
		return fail(errors.New("--secret-file (or FERRY_JWT_SECRET) is required"))
	}
	now := time.Now()
	c := jwt.MapClaims{"sub": *sub, "iat": now.Unix(), "exp": now.Add(*ttl).Unix()}
	if *aud != "" {
		c["aud"] = *aud
	}
	if *iss != "" {
		c["iss"] = *iss
	}
	for _, kv := range claims {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" || c[k] != nil || k == "ferry" {
			return fail(fmt.Errorf("--claim %q: want NAME=VALUE, a name not already set", kv))
		}
		c[k] = v
	}
	if len(pub)+len(allowSub)+len(denyPub)+len(denySub) > 0 {
		lists := func(allow, deny []string) map[string]any {
			return map[string]any{"allow": append([]string{}, allow...), "deny": append([]string{}, deny...)}
		}
		c["ferry"] = map[string]any{"pub": lists(pub, denyPub), "sub": lists(allowSub, denySub)}
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(secrets[0])
	if err != nil {
		return fail(err)
	}
	// check it as the broker would, templates and all
	j, err := auth.NewJWT(auth.JWTConfig{Secrets: secrets[:1], Audience: *aud, Issuer: *iss})
	if err != nil {
		return fail(err)
	}
	id, err := j.Verify(s)
	if err != nil {
		return fail(err)
	}
	if id.Permissions != nil {
		if _, err := perm.Compile(*id.Permissions, perm.Identity{Subject: id.Subject, Claims: id.Claims}); err != nil {
			return fail(err)
		}
	}
	fmt.Fprintln(stdout, s)
	return 0
}
