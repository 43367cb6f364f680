package awsflow

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"golang.org/x/net/html"
)

// Form is an HTML form as a browser would submit it.
type Form struct {
	Action string
	Method string
	Fields url.Values // hidden and text inputs, textareas
	// Buttons maps each named submit button's name to its values.
	Buttons map[string][]string
}

// Page is a fetched HTML page.
type Page struct {
	URL    string
	Status int
	Header http.Header
	Body   string
}

// Get fetches a page.
func Get(ctx context.Context, c *http.Client, pageURL string) (*Page, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, pageURL, nil)
	if err != nil {
		return nil, err
	}
	return do(c, req)
}

// PostForm submits values to action as a browser submits a form.
func PostForm(ctx context.Context, c *http.Client, action string, values url.Values) (*Page, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, action, strings.NewReader(values.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return do(c, req)
}

func do(c *http.Client, req *http.Request) (*Page, error) {
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", req.URL, err)
	}
	return &Page{URL: req.URL.String(), Status: resp.StatusCode, Header: resp.Header, Body: string(b)}, nil
}

// Forms returns the forms of an HTML document, with relative actions resolved
// against base.
func Forms(base, doc string) ([]Form, error) {
	root, err := html.Parse(strings.NewReader(doc))
	if err != nil {
		return nil, fmt.Errorf("parse HTML: %w", err)
	}
	baseURL, err := url.Parse(base)
	if err != nil {
		return nil, err
	}
	var forms []Form
	var walk func(n *html.Node, f *Form)
	walk = func(n *html.Node, f *Form) {
		if n.Type == html.ElementNode {
			switch n.Data {
			case "form":
				action, _ := baseURL.Parse(attr(n, "action"))
				forms = append(forms, Form{Action: action.String(), Method: strings.ToUpper(attr(n, "method")), Fields: url.Values{}, Buttons: map[string][]string{}})
				f = &forms[len(forms)-1]
				for c := n.FirstChild; c != nil; c = c.NextSibling {
					walk(c, f)
				}
				forms[len(forms)-1] = *f
				return
			case "input":
				if f != nil && attr(n, "name") != "" {
					switch strings.ToLower(attr(n, "type")) {
					case "submit":
						f.Buttons[attr(n, "name")] = append(f.Buttons[attr(n, "name")], attr(n, "value"))
					case "checkbox", "radio":
						if hasAttr(n, "checked") {
							f.Fields.Add(attr(n, "name"), attr(n, "value"))
						}
					default:
						f.Fields.Add(attr(n, "name"), attr(n, "value"))
					}
				}
			case "textarea":
				if f != nil && attr(n, "name") != "" {
					var text strings.Builder
					for c := n.FirstChild; c != nil; c = c.NextSibling {
						text.WriteString(c.Data)
					}
					f.Fields.Add(attr(n, "name"), text.String())
				}
			case "button":
				if f != nil && attr(n, "name") != "" && strings.ToLower(attr(n, "type")) != "button" {
					f.Buttons[attr(n, "name")] = append(f.Buttons[attr(n, "name")], attr(n, "value"))
				}
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c, f)
		}
	}
	walk(root, nil)
	return forms, nil
}

func attr(n *html.Node, name string) string {
	for _, a := range n.Attr {
		if a.Key == name {
			return a.Val
		}
	}
	return ""
}

func hasAttr(n *html.Node, name string) bool {
	for _, a := range n.Attr {
		if a.Key == name {
			return true
		}
	}
	return false
}

// Decide does what a person does in a browser without JavaScript: it opens the
// one-time page, writes comment, presses the button whose decision is choice
// ("approve" or "reject"), and confirms on the page the server answers with. It
// returns the final page (the result).
func Decide(ctx context.Context, c *http.Client, pageURL, choice, comment string) (*Page, error) {
	page, err := Get(ctx, c, pageURL)
	if err != nil {
		return nil, fmt.Errorf("open page: %w", err)
	}
	if page.Status != http.StatusOK {
		return page, fmt.Errorf("open page: status %d", page.Status)
	}
	form, err := formWithButton(page, "decision", choice)
	if err != nil {
		return page, err
	}
	values := form.Fields
	if _, ok := values["comment"]; ok {
		values.Set("comment", comment)
	}
	values.Set("decision", choice)
	confirm, err := PostForm(ctx, c, form.Action, values)
	if err != nil {
		return nil, fmt.Errorf("submit decision: %w", err)
	}
	forms, err := Forms(confirm.URL, confirm.Body)
	if err != nil {
		return confirm, err
	}
	for _, f := range forms {
		if f.Method == http.MethodPost && f.Fields.Get("confirmed") != "" {
			result, err := PostForm(ctx, c, f.Action, f.Fields)
			if err != nil {
				return nil, fmt.Errorf("confirm decision: %w", err)
			}
			return result, nil
		}
	}
	// No confirmation step: the answer is the result already.
	return confirm, nil
}

func formWithButton(p *Page, name, value string) (*Form, error) {
	forms, err := Forms(p.URL, p.Body)
	if err != nil {
		return nil, err
	}
	for _, f := range forms {
		for _, v := range f.Buttons[name] {
			if v == value {
				return &f, nil
			}
		}
	}
	return nil, errors.New("the page has no form with a " + name + "=" + value + " button")
}
