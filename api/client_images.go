package api

import (
	"context"
	"net/http"
	"net/url"
)

// Images lists the images on the node.
func (c *Client) Images(ctx context.Context) ([]Image, error) {
	var imgs []Image
	err := c.do(ctx, http.MethodGet, "/v1/images", nil, &imgs)
	return imgs, err
}

// Image returns one image.
func (c *Client) Image(ctx context.Context, digest string) (Image, error) {
	var img Image
	err := c.do(ctx, http.MethodGet, imagePath(digest), nil, &img)
	return img, err
}

// Uploads lists the partial uploads the node keeps.
func (c *Client) Uploads(ctx context.Context) ([]Upload, error) {
	var ups []Upload
	err := c.do(ctx, http.MethodGet, "/v1/uploads", nil, &ups)
	return ups, err
}

// RemoveImage deletes an image from the node.
func (c *Client) RemoveImage(ctx context.Context, digest string) error {
	return c.do(ctx, http.MethodDelete, imagePath(digest), nil, nil)
}

func imagePath(digest string) string { return "/v1/images/" + url.PathEscape(digest) }
