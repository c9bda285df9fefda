"""ImageNet constants shared by the families' preprocessing."""

# The mean pixel (B, G, R) subtracted by the Caffe-trained VGG16 and ResNet weights
# (keras.applications "caffe" mode; the FCN reference's `mean`).
IMAGENET_MEAN_BGR = (103.939, 116.779, 123.68)
